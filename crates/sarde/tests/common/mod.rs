//! What the end-to-end tests of `sarde` share: a working directory with a store, a VM
//! directory and isolated credentials, and a way to run `sarde` in it.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::Digest as _;

/// A test's directory: `oci/` (the store), `vms/`, and isolated credential files.
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
        fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["vms", "runtime"] {
            fs_err::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Workdir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ocidir(&self) -> PathBuf {
        self.dir.path().join("oci")
    }

    pub fn vmdir(&self) -> PathBuf {
        self.dir.path().join("vms")
    }

    /// `sarde --ocidir oci --connect <test libvirt> ARGS`, no config files, own credentials.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sarde"));
        // Global options first: anything after a `--` in `args` belongs to a remote command.
        command
            .arg("--ocidir")
            .arg(self.ocidir())
            .arg("--connect")
            .arg(sardine_testbed::libvirt_uri())
            .args(args)
            .env("SARDE_CONF_FILES", "")
            .env("NO_COLOR", "1")
            .env("REGISTRY_AUTH_FILE", self.dir.path().join("auth.json"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("runtime"))
            .env_remove("SARDE_REGISTRY_USERNAME")
            .env_remove("SARDE_REGISTRY_PASSWORD")
            .stdin(Stdio::null());
        command
    }

    /// Runs sarde and returns what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run sarde: {e}"))
    }

    /// Runs sarde, requires success and returns its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "sarde {args:?} failed with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

/// The sha256 of a file, in hex.
pub fn file_sha256(path: &Path) -> String {
    let mut file = fs_err::File::open(path).unwrap();
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// Bytes the file really occupies on disk.
pub fn allocated(path: &Path) -> u64 {
    sardine_disk::sparse::allocated_bytes(path).unwrap()
}

/// The exit code of a finished command.
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}
