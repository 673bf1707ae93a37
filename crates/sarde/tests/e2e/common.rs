//! What the end-to-end tests of `sarde` share: a working directory with a store, a VM
//! directory and isolated credentials, a way to run `sarde` in it, checks of its output, and
//! how long a guest may take to shut down, and the tiny guest published as an image.

use std::fmt::Debug;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sardine_testbed::{TestVm, VmGuard, VmOptions, guest_image};

/// How long a guest may take to power off after an ACPI shutdown.
pub const SHUTDOWN: Duration = Duration::from_secs(60);

/// A test's directory: `oci/` (the store), `vms/`, and isolated credential files.
///
/// The machine's auth files are never read or written: `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`
/// and `DOCKER_CONFIG` point into this directory.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    /// A new directory under the test bed's scratch directory (QEMU must read the VMs in it).
    pub fn new(label: &str) -> Workdir {
        sardine_testbed::require();
        let dir = tempfile::Builder::new()
            .prefix(&format!("sarde-{label}-"))
            .tempdir_in(sardine_testbed::scratch_dir())
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        // QEMU (another user) must reach the VM files below it.
        fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["vms", "runtime", "docker"] {
            fs_err::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Workdir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The test's store.
    pub fn ocidir(&self) -> PathBuf {
        self.dir.path().join("oci")
    }

    /// Another store in this directory (not created), sharing the test's credentials.
    pub fn other_store(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn vmdir(&self) -> PathBuf {
        self.dir.path().join("vms")
    }

    /// The test's registries.conf (`CONTAINERS_REGISTRIES_CONF`; absent unless written).
    pub fn registries_conf(&self) -> PathBuf {
        self.dir.path().join("registries.conf")
    }

    /// The test's credentials file (`REGISTRY_AUTH_FILE`).
    pub fn auth_file(&self) -> PathBuf {
        self.dir.path().join("auth.json")
    }

    /// Gives `command` (a `sarde`, ours or another) no configuration files, no colours, no
    /// stdin and this directory's credentials only.
    pub fn isolate<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("SARDE_CONF_FILES", "")
            .env("NO_COLOR", "1")
            .env("REGISTRY_AUTH_FILE", self.auth_file())
            .env("XDG_RUNTIME_DIR", self.dir.path().join("runtime"))
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            // The host's registries.conf is not read; a test writes this file to use one.
            .env("CONTAINERS_REGISTRIES_CONF", self.registries_conf())
            .env_remove("SARDE_REGISTRY_USERNAME")
            .env_remove("SARDE_REGISTRY_PASSWORD")
            .stdin(Stdio::null())
    }

    /// `sarde --ocidir oci --connect <test libvirt> ARGS`, isolated (see [`Workdir::isolate`]).
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(&self.ocidir(), args)
    }

    /// Like [`Workdir::command`], with the store `ocidir`.
    pub fn command_in(&self, ocidir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sarde"));
        // Global options first: anything after a `--` in `args` belongs to a remote command.
        command
            .arg("--ocidir")
            .arg(ocidir)
            .arg("--connect")
            .arg(sardine_testbed::libvirt_uri())
            .args(args);
        self.isolate(&mut command);
        command
    }

    /// Runs sarde and returns what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.ocidir(), args)
    }

    /// Runs sarde with the store `ocidir` and returns what it did.
    pub fn run_in(&self, ocidir: &Path, args: &[&str]) -> Output {
        output_of(&mut self.command_in(ocidir, args))
    }

    /// Runs sarde, requires success and returns its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(&self.ocidir(), args)
    }

    /// Runs sarde with the store `ocidir`, requires success and returns its stdout, trimmed.
    pub fn ok_in(&self, ocidir: &Path, args: &[&str]) -> String {
        expect_ok(&self.run_in(ocidir, args), args)
            .trim()
            .to_owned()
    }
}

/// Runs `command` to completion and returns what it did.
pub fn output_of(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()))
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails the test unless `output` (of sarde `what`) is a success; returns its stdout as it is.
pub fn expect_ok(output: &Output, what: impl Debug) -> String {
    assert!(
        output.status.success(),
        "sarde {what:?} failed ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Fails the test unless `output` ended with exit status `code`.
pub fn expect_code(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: expected exit status {code}, got {}:\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Bytes the file really occupies on disk.
pub fn allocated(path: &Path) -> u64 {
    sardine_disk::sparse::allocated_bytes(path).unwrap()
}

/// The exit code of a finished command.
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Exports a fresh tiny guest as `image` with its credentials, and pushes it when `image`
/// names a registry. The guard removes the base VM that runs of the image import (named after
/// its image ID), also when the test fails.
pub fn publish_tiny(work: &Workdir, image: &str, push: bool) -> VmGuard {
    let guest = guest_image();
    let vm = TestVm::create(&VmOptions {
        label: "run-source".into(),
        ..VmOptions::default()
    })
    .unwrap();
    let config = work.path().join("sardine.json");
    let json = serde_json::json!({
        "users": [{"username": guest.user, "password": guest.password}],
        "services": [{"service": "ssh", "port": 22, "protocol": "tcp"}],
    });
    fs_err::write(&config, json.to_string()).unwrap();
    let vmconfig = config.to_str().unwrap();
    let id = work.ok(&["export", vm.name(), image, "--vmconfig", vmconfig]);
    if push {
        work.ok(&["push", image]);
    }
    VmGuard::adopt(&format!("sha256:{id}")).unwrap()
}
