//! Checks that the test bed is there and tells tests where things are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// The network namespace that `scripts/setup-testbed` creates and runs libvirtd in.
pub const NETNS: &str = "sarde-test";

/// The libvirt URI of the test daemon (`SARDE_TEST_LIBVIRT_URI` overrides it).
pub fn libvirt_uri() -> String {
    std::env::var("SARDE_TEST_LIBVIRT_URI").unwrap_or_else(|_| "qemu:///system".to_owned())
}

/// The workspace root (where `scripts/` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A directory for test VMs and stores: on a real disk (not tmpfs), readable by QEMU.
pub fn scratch_dir() -> PathBuf {
    std::env::var_os("SARDE_TEST_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/sardinecake-tests"))
}

/// Fails the calling test with a clear message unless the whole test bed is usable: the process
/// runs inside the namespace, libvirtd answers, and `docker-registry` is installed.
///
/// Checked once per process; every end-to-end test calls it first.
pub fn require() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECK.get_or_init(|| check().map_err(|e| format!("{e:#}")));
    if let Err(message) = result {
        panic!(
            "the sardinecake test bed is missing: {message}\n\
             hint: run the tests with `scripts/test` (it runs scripts/setup-testbed as root, then the \
             tests inside the network namespace `{NETNS}`)"
        );
    }
}

fn check() -> anyhow::Result<()> {
    if !in_netns()? {
        bail!("this process is not inside the network namespace `{NETNS}`");
    }
    for program in ["docker-registry", "htpasswd", "qemu-img"] {
        if which(program).is_none() {
            bail!("`{program}` is not installed");
        }
    }
    virt::connect::Connect::open(Some(&libvirt_uri()))
        .with_context(|| format!("libvirt at {} does not answer", libvirt_uri()))?;
    fs_err::create_dir_all(scratch_dir())?;
    Ok(())
}

/// Whether this process's network namespace is the test bed's.
fn in_netns() -> anyhow::Result<bool> {
    let named = Path::new("/run/netns").join(NETNS);
    let Ok(theirs) = fs_err::metadata(&named) else {
        bail!("the network namespace `{NETNS}` does not exist");
    };
    let ours = fs_err::metadata("/proc/self/ns/net")?;
    use std::os::unix::fs::MetadataExt;
    Ok(theirs.ino() == ours.ino() && theirs.dev() == ours.dev())
}

/// Where `program` is on `PATH`, if anywhere.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A command that runs inside the test bed's namespace: as is when this process is already in
/// it, else through `ip netns exec`.
pub fn netns_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if in_netns().unwrap_or(false) {
        Command::new(program)
    } else {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", NETNS]).arg(program);
        command
    }
}
