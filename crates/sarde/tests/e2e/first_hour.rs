//! A new user's first hour: the documented flow (fetch → import → `virsh start`; clone) with
//! the built-in defaults — no `--ocidir`, `--vmdir` or `--connect` — from a fresh working
//! directory, and with relative, `..` and symlinked VM directories.
//!
//! libvirtd resolves relative paths against its own working directory, so each VM is started
//! with `virsh` (not through sarde) and every file path in its definition must be absolute and
//! canonical. As root, the defaults are /var/lib/sardinecake/{oci,vms}: the test removes what it
//! put there with `sarde rm`, as a user would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{Workdir, expect_ok, output_of};
use sardine_testbed::{Registry, RegistryAuth, TestVm, VmGuard, VmOptions, guest_image};

const SHUTDOWN: Duration = Duration::from_secs(60);

/// A user in a fresh working directory: `sarde ARGS` with no directory or connection flags.
struct User<'w> {
    work: &'w Workdir,
    cwd: PathBuf,
}

impl User<'_> {
    fn sarde(&self, args: &[&str]) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sarde"));
        command.args(args).current_dir(&self.cwd);
        self.work.isolate(&mut command);
        expect_ok(&output_of(&mut command), args).trim().to_owned()
    }

    /// `virsh start NAME`, as the README tells users to start an imported VM.
    fn virsh_start(&self, name: &str) {
        let output = output_of(
            Command::new("virsh")
                .args(["-c", &sardine_testbed::libvirt_uri(), "start", name])
                .current_dir(&self.cwd),
        );
        assert!(
            output.status.success(),
            "virsh start {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `sarde ssh NAME -- COMMAND` with the image's credentials; its stdout.
    fn ssh(&self, name: &str, command: &str) -> String {
        self.sarde(&["ssh", name, "--", command])
    }
}

/// The file paths of a domain's definition (disks, kernel, initrd, NVRAM).
fn domain_paths(name: &str) -> Vec<String> {
    let output = output_of(Command::new("virsh").args([
        "-c",
        &sardine_testbed::libvirt_uri(),
        "dumpxml",
        "--inactive",
        name,
    ]));
    let xml = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut paths = Vec::new();
    for (open, close) in [
        ("file='", "'"),
        ("<kernel>", "</kernel>"),
        ("<initrd>", "</initrd>"),
    ] {
        let mut rest = xml.as_str();
        while let Some(start) = rest.find(open) {
            rest = &rest[start + open.len()..];
            let end = rest.find(close).unwrap();
            paths.push(rest[..end].to_owned());
        }
    }
    assert!(!paths.is_empty(), "no file paths in {name}:\n{xml}");
    paths
}

/// Every path of the domain is absolute, canonical and below `dir`.
fn assert_canonical_below(name: &str, dir: &Path) {
    for path in domain_paths(name) {
        let as_path = Path::new(&path);
        assert!(as_path.is_absolute(), "{name}: relative path {path}");
        assert_eq!(
            fs_err::canonicalize(as_path).unwrap(),
            as_path,
            "{name}: {path} is not canonical"
        );
        assert!(as_path.starts_with(dir), "{name}: {path} is not in {dir:?}");
    }
}

/// Publishes the tiny guest as `REG/vms/tiny-<unique>:1` with its credentials in the image.
fn publish(work: &Workdir, registry: &Registry) -> String {
    let vm = TestVm::create(&VmOptions {
        label: "first-hour".into(),
        ..VmOptions::default()
    })
    .unwrap();
    let guest = guest_image();
    // The unique second user makes the image's ID this test's own: other tests import the
    // same guest, and base VMs are named after the ID.
    let unique = sardine_testbed::unique_name("first-hour");
    let config = serde_json::json!({"users": [
        {"username": guest.user, "password": guest.password},
        {"username": unique, "password": "unused"},
    ]});
    let config_file = work.path().join("sardine.json");
    fs_err::write(&config_file, config.to_string()).unwrap();
    let image = format!("{}/vms/{unique}:1", registry.host());
    work.ok(&[
        "export",
        vm.name(),
        &image,
        "--vmconfig",
        config_file.to_str().unwrap(),
    ]);
    work.ok(&["push", &image]);
    image
}

#[test]
fn first_hour_documented_flow_boots_with_default_directories() {
    let work = Workdir::new("first-hour");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let image = publish(&work, &registry);
    let cwd = work.path().join("fresh");
    fs_err::create_dir_all(&cwd).unwrap();
    let user = User { work: &work, cwd };
    let defaults = Path::new(sardine_config::SYSTEM_DATA_DIR);

    // sarde fetch REG/vms/tiny:1; name=$(sarde import REG/vms/tiny:1); virsh start "$name"
    user.sarde(&["fetch", &image]);
    let base = user.sarde(&["import", &image]);
    let base_guard = VmGuard::adopt(&base).unwrap();
    assert_canonical_below(&base, &defaults.join("vms"));
    user.virsh_start(&base);
    assert_eq!(user.ssh(&base, "echo base; echo base > /data/who"), "base");
    base_guard.shutdown(SHUTDOWN).unwrap();

    // sarde clone REG/vms/tiny:1 mine && virsh start mine
    let mine = sardine_testbed::unique_name("mine");
    let mine_guard = VmGuard::adopt(&mine).unwrap();
    user.sarde(&["clone", &image, &mine]);
    // The clone's overlays, and its base's files (backing chain, kernel, initrd).
    assert_canonical_below(&mine, &defaults.join("vms"));
    assert!(
        domain_paths(&mine)
            .iter()
            .any(|p| p.starts_with(&format!("{}/vms/{mine}/", defaults.display())))
    );
    user.virsh_start(&mine);
    assert_eq!(user.ssh(&mine, "cat /data/who"), "base");

    // A user changing directory finds the same store.
    let elsewhere = User {
        work: &work,
        cwd: work.path().to_path_buf(),
    };
    assert!(
        elsewhere.sarde(&["list"]).contains(&image),
        "list elsewhere"
    );

    mine_guard.shutdown(SHUTDOWN).unwrap();
    user.sarde(&["rm", "--vm", &mine, &base]);
    user.sarde(&["rm", "--image", &image]);
    assert!(!defaults.join("vms").join(&mine).exists());
    assert!(!defaults.join("vms").join(&base).exists());
}

#[test]
fn first_hour_relative_vm_directories_boot_from_canonical_paths() {
    let work = Workdir::new("first-hour-rel");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let image = publish(&work, &registry);
    let cwd = work.path().join("fresh");
    fs_err::create_dir_all(cwd.join("real")).unwrap();
    std::os::unix::fs::symlink("real", cwd.join("link")).unwrap();
    let user = User { work: &work, cwd };
    let ocidir = ["--ocidir", "store"];
    user.sarde(&[&ocidir[..], &["fetch", &image]].concat());

    let base = sardine_testbed::unique_name("rel-base");
    let _base_guard = VmGuard::adopt(&base).unwrap();
    user.sarde(
        &[
            &ocidir[..],
            &["import", &image, "--name", &base, "--vmdir", "vms/"],
        ]
        .concat(),
    );
    let canonical_cwd = fs_err::canonicalize(&user.cwd).unwrap();
    assert_canonical_below(&base, &canonical_cwd.join("vms").join(&base));

    let clone = sardine_testbed::unique_name("rel-clone");
    let clone_guard = VmGuard::adopt(&clone).unwrap();
    let vmdir = "./link/../link/clones";
    user.sarde(&[&ocidir[..], &["clone", &base, &clone, "--vmdir", vmdir]].concat());
    assert_canonical_below(&clone, &canonical_cwd);
    let overlays = canonical_cwd.join("real/clones").join(&clone);
    assert!(
        domain_paths(&clone)
            .iter()
            .any(|p| Path::new(p).starts_with(&overlays))
    );
    user.virsh_start(&clone);
    assert_eq!(user.ssh(&clone, "echo up"), "up");
    clone_guard.shutdown(SHUTDOWN).unwrap();
}
