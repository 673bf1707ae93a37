//! Against the real libvirt daemon (`qemu:///system`, set up by the test bed): define a VM with a
//! tiny qcow2 disk from XML that went through `DomainXml` and the sanitiser, look it up, check its
//! state and undefine it. The VM is never started (that needs a bootable guest).

use std::path::Path;
use std::process::Command;

use sardine_libvirt::{DomainXml, Libvirt, VmState, sanitize};

const SYSTEM_URI: &str = "qemu:///system";

/// Undefines the test VM when the test ends, also when it fails.
struct UndefineOnDrop<'a> {
    libvirt: &'a Libvirt,
    name: String,
}

impl Drop for UndefineOnDrop<'_> {
    fn drop(&mut self) {
        if let Ok(Some(vm)) = self.libvirt.lookup(&self.name) {
            if vm.state().is_ok_and(|s| s != VmState::ShutOff) {
                let _ = vm.destroy();
            }
            let _ = vm.undefine();
        }
    }
}

fn create_qcow2(path: &Path) {
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("16M")
        .status()
        .expect("qemu-img runs (install qemu-utils)");
    assert!(
        status.success(),
        "qemu-img create failed for {}",
        path.display()
    );
}

fn image_xml() -> String {
    "<domain type='qemu'>\
       <name>from-the-image</name>\
       <memory unit='MiB'>64</memory>\
       <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>\
       <devices>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='disk.qcow2'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='network'><source network='sarde-test'/><model type='virtio'/></interface>\
         <serial type='pty'/>\
       </devices>\
     </domain>"
        .to_owned()
}

#[test]
fn a_sanitised_domain_is_defined_found_and_undefined_on_the_system_daemon() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let disk = directory.path().join("disk.qcow2");
    create_qcow2(&disk);

    let mut domain = DomainXml::parse(&image_xml()).unwrap();
    let violations = sanitize::check(&domain, &["disk.qcow2".to_owned()]);
    assert!(
        violations.is_empty(),
        "the test image is safe: {violations:?}"
    );
    let name = format!("sardine-test-libvirt-{}", uuid::Uuid::new_v4().simple());
    domain.set_name(&name);
    domain.randomize_macs();
    domain.set_disk_source(0, disk.to_str().expect("UTF-8 temporary path"));

    let libvirt =
        Libvirt::open(Some(SYSTEM_URI)).expect("libvirtd runs (see scripts/ for the test bed)");
    let _guard = UndefineOnDrop {
        libvirt: &libvirt,
        name: name.clone(),
    };
    let vm = libvirt.define(&domain.to_xml().unwrap()).unwrap();

    let found = libvirt.lookup(&name).unwrap().expect("the VM is defined");
    assert_eq!(found.uuid(), vm.uuid());
    let by_uuid = libvirt
        .lookup(&vm.uuid().to_string())
        .unwrap()
        .expect("found by UUID");
    assert_eq!(by_uuid.name(), name);
    assert_eq!(found.state().unwrap(), VmState::ShutOff);
    assert!(found.is_persistent().unwrap());

    let defined = DomainXml::parse(&found.xml(true).unwrap()).unwrap();
    assert_eq!(defined.name().as_deref(), Some(name.as_str()));
    assert_eq!(defined.disks()[0].source.as_deref(), disk.to_str());
    assert_eq!(defined.interfaces()[0].mac, domain.interfaces()[0].mac);

    found.undefine().unwrap();
    assert!(libvirt.lookup(&name).unwrap().is_none());
    assert!(disk.exists(), "undefining leaves the disk alone");
}
