//! End-to-end test of a UEFI guest (OVMF, a pflash loader and an NVRAM variable store): the
//! store written by the firmware travels with the image, import restores it byte for byte next
//! to the disks, each clone gets its own copy, and the imported VM and a clone boot. Real
//! libvirt and the tiny guest, inside the test bed's namespace.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sardine_libvirt::DomainXml;
use sardine_testbed::{OVMF_CODE, OVMF_VARS, TestVm, VmGuard, VmOptions, file_digest, unique_name};

use crate::common::{SHUTDOWN, Workdir};

const BOOT: Duration = Duration::from_secs(120);

/// The `<nvram>` path of a defined domain.
fn nvram_of(name: &str) -> PathBuf {
    let xml = std::process::Command::new("virsh")
        .args([
            "-c",
            &sardine_testbed::libvirt_uri(),
            "dumpxml",
            "--inactive",
            name,
        ])
        .output()
        .unwrap();
    assert!(
        xml.status.success(),
        "virsh dumpxml {name}: {}",
        String::from_utf8_lossy(&xml.stderr)
    );
    let domain = DomainXml::parse(&String::from_utf8(xml.stdout).unwrap()).unwrap();
    PathBuf::from(
        domain
            .boot_files()
            .nvram
            .unwrap_or_else(|| panic!("{name} has no <nvram>")),
    )
}

fn in_guest(guard: &VmGuard, command: &str) -> String {
    guard.start().unwrap();
    let output = guard.ssh(command).unwrap();
    assert_eq!(output.code, Some(0), "{command}: {}", output.stderr);
    output.stdout.trim().to_owned()
}

#[test]
fn uefi_guest_boots_after_export_import_and_clone_with_its_nvram() {
    assert!(
        Path::new(OVMF_CODE).exists() && Path::new(OVMF_VARS).exists(),
        "OVMF is missing: run scripts/setup-testbed (it installs the ovmf package)"
    );
    let work = Workdir::new("uefi");
    let vm = TestVm::create(&VmOptions {
        label: "uefi".into(),
        uefi: true,
        ..VmOptions::default()
    })
    .unwrap();
    vm.start().unwrap();
    vm.wait_for_ip(BOOT)
        .unwrap_or_else(|e| panic!("{e}\n{}", vm.console_log()));
    let marker = unique_name("uefi-marker");
    let written = vm
        .ssh(&format!("echo {marker} > /data/marker && sync"))
        .unwrap();
    assert_eq!(written.code, Some(0), "{}", written.stderr);
    vm.shutdown(SHUTDOWN).unwrap();
    let nvram = vm.dir().join("nvram.fd");
    assert_ne!(
        file_digest(&nvram),
        file_digest(Path::new(OVMF_VARS)),
        "OVMF wrote its variables"
    );

    work.ok(&["export", vm.name(), "uefi/tiny:1"]);
    let vmdir = work.vmdir();
    let name = unique_name("uefi-imported");
    let imported = VmGuard::adopt(&name).unwrap();
    work.ok(&[
        "import",
        "uefi/tiny:1",
        "-n",
        &name,
        "-o",
        vmdir.to_str().unwrap(),
    ]);
    let restored = nvram_of(&name);
    assert!(
        restored.starts_with(vmdir.join(&name)),
        "{}",
        restored.display()
    );
    assert_eq!(
        file_digest(&restored),
        file_digest(&nvram),
        "the variable store travels unchanged"
    );
    assert_eq!(in_guest(&imported, "cat /data/marker"), marker);
    imported.shutdown(SHUTDOWN).unwrap();

    let clone_name = unique_name("uefi-clone");
    let clone = VmGuard::adopt(&clone_name).unwrap();
    work.ok(&["clone", &name, &clone_name, "-o", vmdir.to_str().unwrap()]);
    let clone_nvram = nvram_of(&clone_name);
    assert_ne!(clone_nvram, restored, "a clone has its own variable store");
    assert_eq!(file_digest(&clone_nvram), file_digest(&restored));
    assert_eq!(in_guest(&clone, "cat /data/marker"), marker);
    clone.shutdown(SHUTDOWN).unwrap();
}
