//! Hostile disk files: file names that QEMU reads as protocols or JSON, and qcow2 chains that
//! open other formats, or files as another format than declared. Each image is refused by
//! `sarde import` (chunked and legacy formats) with nothing left behind (see
//! `hostile_support`), and a VM's own chain is checked before `sarde clone` lets `qemu-img`
//! open it. A [`Bait`] listener on loopback proves that nothing connected where the image
//! pointed.

use sardine_testbed::{Bait, qcow2_bytes, strip_backing_format};

use crate::hostile_support::{Env, Image, TITLE, domain_xml};

/// An image whose domain uses `disk.qcow2` (the qcow2 `top`) and that also carries the raw file
/// `other` of 4 KiB.
fn image_with_backing(top: &[u8], other: &str) -> Image {
    Image::new(&domain_xml("disk.qcow2", "qcow2", ""))
        .chunked_file("disk.qcow2", top, 65536)
        .chunked_file(other, &[0x5a; 4096], 4096)
}

/// Names that QEMU reads as protocols, though they contain no `/`.
fn protocol_names(bait: &Bait) -> Vec<String> {
    vec![
        format!("nbd:127.0.0.1:{}", bait.port()),
        format!("nbd+tcp:127.0.0.1:{}", bait.port()),
        "ssh:localhost".to_owned(),
        "file:shadow".to_owned(),
        "json:{}".to_owned(),
    ]
}

#[test]
fn hostile_disk_file_named_as_a_protocol() {
    let env = Env::new();
    let bait = Bait::new().unwrap();
    for name in protocol_names(&bait) {
        let top = qcow2_bytes(env.path(), &["-u", "-F", "raw", "-b", &name]).unwrap();
        let image = image_with_backing(&top, &name);
        env.assert_refused(&image, &["not a plain file name"]);
    }
    assert_eq!(bait.connections(), 0);
}

#[test]
fn hostile_disk_file_named_as_an_option_or_with_odd_characters() {
    let env = Env::new();
    for name in ["-o", "a b", "a,b", "disk\u{e9}.img", "a\\b"] {
        let mut image = Image::ordinary();
        for layer in &mut image.layers[1..] {
            layer.annotate(TITLE, name);
        }
        env.assert_refused(&image, &["not a plain file name"]);
    }
}

#[test]
fn hostile_legacy_file_named_as_a_protocol() {
    let env = Env::new();
    let bait = Bait::new().unwrap();
    let name = format!("nbd:127.0.0.1:{}", bait.port());
    let top = qcow2_bytes(env.path(), &["-u", "-F", "raw", "-b", &name]).unwrap();
    let image = Image::new(&domain_xml("disk.qcow2", "qcow2", ""))
        .legacy_file("disk.qcow2", &top)
        .legacy_file(&name, &[0x5a; 4096]);
    env.assert_refused(&image, &[&name, "plain file name"]);
    assert_eq!(bait.connections(), 0);
}

#[test]
fn hostile_qcow2_backing_names_a_protocol() {
    // The name is no file of the image here: refused as such, before anything opens it.
    let env = Env::new();
    let bait = Bait::new().unwrap();
    for name in protocol_names(&bait) {
        let top = qcow2_bytes(env.path(), &["-u", "-F", "raw", "-b", &name]).unwrap();
        let image = image_with_backing(&top, "base.img");
        env.assert_refused(&image, &["disk.qcow2", "backing file"]);
    }
    assert_eq!(bait.connections(), 0);
}

#[test]
fn hostile_qcow2_backing_file_of_another_format() {
    let env = Env::new();
    for format in ["vmdk", "qed", "vhdx", "luks", "vpc", "parallels"] {
        let top = qcow2_bytes(env.path(), &["-u", "-F", format, "-b", "base.img"]).unwrap();
        let image = image_with_backing(&top, "base.img");
        env.assert_refused(&image, &["disk.qcow2", format, "only qcow2 and raw"]);
    }
}

#[test]
fn hostile_qcow2_backing_file_of_another_format_than_declared() {
    let env = Env::new();
    // A raw file declared qcow2.
    let top = qcow2_bytes(env.path(), &["-u", "-F", "qcow2", "-b", "base.img"]).unwrap();
    let image = image_with_backing(&top, "base.img");
    env.assert_refused(&image, &["disk.qcow2", "declares", "but that file is raw"]);
    // A qcow2 file declared raw.
    let base = qcow2_bytes(env.path(), &[]).unwrap();
    let top = qcow2_bytes(env.path(), &["-u", "-F", "raw", "-b", "base.qcow2"]).unwrap();
    let image = Image::new(&domain_xml("disk.qcow2", "qcow2", ""))
        .chunked_file("disk.qcow2", &top, 65536)
        .chunked_file("base.qcow2", &base, 65536);
    env.assert_refused(&image, &["disk.qcow2", "but that file is qcow2"]);
}

#[test]
fn hostile_qcow2_backing_format_undeclared_on_a_raw_file() {
    // QEMU would guess the raw file's format from its contents, which the guest wrote.
    let env = Env::new();
    let mut top = qcow2_bytes(env.path(), &["-u", "-F", "raw", "-b", "base.img"]).unwrap();
    strip_backing_format(&mut top);
    let image = image_with_backing(&top, "base.img");
    env.assert_refused(&image, &["disk.qcow2", "declares no format"]);
}

#[test]
fn hostile_control_an_undeclared_backing_format_on_a_qcow2_file_imports() {
    // Images made before qemu-img recorded backing formats: QEMU can only probe qcow2 here.
    let env = Env::new();
    let base = qcow2_bytes(env.path(), &[]).unwrap();
    let mut top = qcow2_bytes(env.path(), &["-u", "-F", "qcow2", "-b", "base.qcow2"]).unwrap();
    strip_backing_format(&mut top);
    let image = Image::new(&domain_xml("disk.qcow2", "qcow2", ""))
        .chunked_file("disk.qcow2", &top, 65536)
        .chunked_file("base.qcow2", &base, 65536);
    image.write(&env.ocidir());
    let name = sardine_testbed::unique_name("hostile-undeclared");
    let guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    env.import_ok(&name);
    assert!(guard.exists());
}

/// Defines (never starts) a VM `name` whose only disk is the qcow2 image at `disk`.
fn define_vm(env: &Env, name: &str, disk: &std::path::Path) {
    let xml = domain_xml(&disk.to_string_lossy(), "qcow2", "")
        .replace("<name>hostile</name>", &format!("<name>{name}</name>"))
        .replace("type='kvm'", "type='qemu'");
    let file = env.path().join(format!("{name}.xml"));
    fs_err::write(&file, xml).unwrap();
    let output = sardine_testbed::netns_command("virsh")
        .args(["-c", &sardine_testbed::libvirt_uri(), "define"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "virsh define: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn hostile_clone_of_a_vm_whose_chain_names_a_protocol() {
    // `qemu-img create` of the clone's overlay would open the source's whole chain: it is
    // checked first, and nothing connects to the bait.
    let env = Env::new();
    let bait = Bait::new().unwrap();
    let backing = format!("nbd:127.0.0.1:{}", bait.port());
    let disk = env.path().join("top.qcow2");
    let bytes = qcow2_bytes(env.path(), &["-u", "-F", "raw", "-b", &backing]).unwrap();
    fs_err::write(&disk, bytes).unwrap();
    let source = sardine_testbed::unique_name("hostile-chain");
    let _source_guard = sardine_testbed::VmGuard::adopt(&source).unwrap();
    define_vm(&env, &source, &disk);
    let target = sardine_testbed::unique_name("hostile-chain-clone");
    let target_guard = sardine_testbed::VmGuard::adopt(&target).unwrap();
    let vmdir = env.vmdir().to_string_lossy().into_owned();
    let output = env.run(&["clone", &source, &target, "-o", &vmdir]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the clone succeeded: {stderr}");
    assert!(stderr.contains("protocol"), "{stderr}");
    assert!(!target_guard.exists());
    assert!(!env.vmdir().join(&target).exists());
    assert_eq!(bait.connections(), 0);
}

/// 1 GiB of 0x01 bytes: about 1 MiB compressed.
const BOMB_SIZE: usize = 1 << 30;

#[test]
fn hostile_legacy_bomb_stops_at_the_maximum_disk_size() {
    let env = Env::new();
    let mut image =
        Image::new(&domain_xml("bomb.img", "raw", "")).legacy_bomb("bomb.img", b"", 1, BOMB_SIZE);
    assert!(
        image.last().blob.len() < BOMB_SIZE / 900,
        "not a 1000:1 bomb"
    );
    image.write(&env.ocidir());
    env.assert_import_refused_with(
        &["--max-disk-size", "64MiB"],
        &[
            "bomb.img",
            "larger than 67108864 bytes",
            "maximum disk size",
        ],
    );
}

#[test]
fn hostile_legacy_qcow2_bomb_stops_at_its_virtual_size() {
    let env = Env::new();
    let header = qcow2_bytes(env.path(), &[]).unwrap();
    let image = Image::new(&domain_xml("bomb.qcow2", "qcow2", "")).legacy_bomb(
        "bomb.qcow2",
        &header,
        1,
        BOMB_SIZE,
    );
    image.write(&env.ocidir());
    env.assert_import_refused(&["bomb.qcow2", "virtual size of 1048576 bytes"]);
}

#[test]
fn hostile_legacy_layers_are_not_unpacked_for_a_refused_domain() {
    // The stream is cut short: unpacking it would fail on that first, so the policy's refusal
    // shows that nothing was unpacked.
    let env = Env::new();
    let hostdev = "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></source></hostdev>";
    let mut image = Image::new(&domain_xml("bomb.img", "raw", hostdev))
        .legacy_bomb("bomb.img", b"", 1, BOMB_SIZE);
    let half = image.last().blob.len() / 2;
    image.last().blob.truncate(half);
    let stderr = env.assert_refused(&image, &["/domain/devices/hostdev"]);
    assert!(!stderr.contains("truncated"), "{stderr}");
}

/// The permission bits of `path`.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn hostile_vm_files_are_private_to_their_owner() {
    // A VM's disks hold the guest's secrets: no other local user may read them, in an
    // imported VM or in a clone.
    let env = Env::new();
    Image::ordinary().write(&env.ocidir());
    let name = sardine_testbed::unique_name("hostile-private");
    let _guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    env.import_ok(&name);
    let dir = env.vmdir().join(&name);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("disk.img")), 0o600);

    let clone = sardine_testbed::unique_name("hostile-private-clone");
    let _clone_guard = sardine_testbed::VmGuard::adopt(&clone).unwrap();
    let vmdir = env.vmdir().to_string_lossy().into_owned();
    env.ok(&["clone", &name, &clone, "-o", &vmdir]);
    let clone_dir = env.vmdir().join(&clone);
    assert_eq!(mode(&clone_dir), 0o700);
    assert_eq!(mode(&clone_dir.join("disk.img")), 0o600);
}

#[test]
fn hostile_defined_vm_whose_files_vanished_is_imported_again() {
    // What a power cut between the define and the directory reaching the disk would leave.
    let env = Env::new();
    Image::ordinary().write(&env.ocidir());
    let name = sardine_testbed::unique_name("hostile-vanished");
    let guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    assert!(env.import(&name, &[]).status.success());
    let dir = env.vmdir().join(&name);
    fs_err::remove_dir_all(&dir).unwrap();
    let output = env.import(&name, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(guard.exists());
    assert_eq!(
        sardine_testbed::file_digest(&dir.join("disk.img")),
        sardine_testbed::digest_of(&sardine_testbed::Noise::new(7).bytes(10_000))
    );
}
