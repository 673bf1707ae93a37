//! `sarde clone` and `sarde rm` killed at any moment: the next run of the same command
//! finishes the job, and nothing of the VM is left behind. Real libvirt, inside the test
//! bed's namespace; the moments are a spread of delays before a SIGKILL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sardine_testbed::{TestVm, VmGuard, VmOptions, unique_name};

use crate::common::{Workdir, code};

/// Delays before the kill: from "before it did anything" to "after it finished".
const DELAYS_MS: [u64; 8] = [0, 3, 8, 15, 30, 60, 120, 400];

/// Starts `sarde ARGS`, kills it after `delay_ms` and waits for it.
fn kill_after(work: &Workdir, args: &[&str], delay_ms: u64) {
    let mut child = work
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(delay_ms));
    let _already_done = child.kill();
    child.wait().unwrap();
}

/// `qemu-img check` of a clone's overlay.
fn check_overlay(path: &Path) {
    let output = Command::new("qemu-img")
        .args(["check", "-q"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn killed_clone_and_rm_are_finished_by_running_them_again() {
    let work = Workdir::new("killed");
    let vm = TestVm::create(&VmOptions {
        label: "killed".into(),
        ..VmOptions::default()
    })
    .unwrap();
    let clonedir = work.vmdir();
    let clonedir_arg = clonedir.to_str().unwrap();
    for delay in DELAYS_MS {
        let name = unique_name("killed-clone");
        let guard = VmGuard::adopt(&name).unwrap();
        let clone_args = ["clone", vm.name(), &name, "-o", clonedir_arg];
        kill_after(&work, &clone_args, delay);
        let again = work.run(&clone_args);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(
            again.status.success() || (guard.exists() && stderr.contains("already exists")),
            "clone after a kill at {delay} ms failed with {}:\n{stderr}",
            code(&again)
        );
        assert!(
            guard.exists(),
            "no clone after a kill at {delay} ms and a second run"
        );
        check_overlay(&clonedir.join(&name).join("data.qcow2"));

        kill_after(&work, &["rm", "--vm", &name], delay / 2);
        let again = work.run(&["rm", "--vm", &name]);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(
            again.status.success() || (!guard.exists() && code(&again) == 3),
            "rm after a kill at {} ms failed with {}:\n{stderr}",
            delay / 2,
            code(&again)
        );
        assert!(
            !guard.exists(),
            "the VM survived rm (kill at {} ms)",
            delay / 2
        );
        assert!(
            !clonedir.join(&name).exists(),
            "the clone's directory survived rm"
        );
    }
    // What a kill between the undefine and the deletion leaves is garbage that prune knows.
    let leftovers: Vec<String> = fs_err::read_dir(&clonedir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".clone-") && !n.ends_with(".removing"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "left in the clone directory: {leftovers:?}"
    );
}
