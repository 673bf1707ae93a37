//! A corpus of hostile images, built by hand (see `hostile_support`), each imported with
//! `sarde import`: every one must be refused with an error naming the problem, define nothing
//! in libvirt and leave no file outside the store (the VM directory keeps only its lock files).
//! Runs against the test bed (libvirt in the namespace `sarde-test`).

use sardine_testbed::{Noise, digest_of, file_digest};

use crate::hostile_support::{
    CHUNK_DIGEST, Env, FILE_SIZE, IMAGE, INDEX_TYPE, Image, LENGTH, Layer, TITLE, domain_xml,
};

#[test]
fn hostile_control_an_ordinary_hand_built_image_imports() {
    // The corpus means something only if the untampered image imports.
    let env = Env::new();
    Image::ordinary().write(&env.ocidir());
    let name = sardine_testbed::unique_name("hostile-control");
    let guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    let output = env.import_ok(&name);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), name);
    assert!(guard.exists());
    let disk = env.vmdir().join(&name).join("disk.img");
    assert_eq!(file_digest(&disk), digest_of(&Noise::new(7).bytes(10_000)));
}

#[test]
fn hostile_malformed_manifest_json() {
    let env = Env::new();
    Image::ordinary().write_edited(&env.ocidir(), |_| {
        br#"{"schemaVersion": 2, "config": {"#.to_vec()
    });
    env.assert_import_refused(&["manifest"]);
}

#[test]
fn hostile_manifest_with_wrong_schema() {
    let env = Env::new();
    Image::ordinary().write_edited(&env.ocidir(), |mut manifest| {
        manifest["layers"] = serde_json::json!("not a list");
        serde_json::to_vec(&manifest).unwrap()
    });
    env.assert_import_refused(&["manifest"]);
}

#[test]
fn hostile_index_entry_is_an_image_index() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image.index_media_type = INDEX_TYPE.into();
    env.assert_refused(&image, &["index"]);
}

#[test]
fn hostile_manifest_blob_is_an_image_index() {
    let env = Env::new();
    Image::ordinary().write_edited(&env.ocidir(), |_| {
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": []});
        serde_json::to_vec(&index).unwrap()
    });
    env.assert_import_refused(&["index"]);
}

#[test]
fn hostile_unknown_layer_type() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image
        .layers
        .push(Layer::new("application/x-evil", b"#!/bin/sh\n".to_vec()));
    env.assert_refused(&image, &["unknown media type", "application/x-evil"]);
}

#[test]
fn hostile_missing_chunk_blob() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image.last().present = false;
    let digest = image.last().digest();
    env.assert_refused(&image, &[digest.trim_start_matches("sha256:")]);
}

#[test]
fn hostile_missing_domain_blob() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image.layers[0].present = false;
    let digest = image.layers[0].digest();
    env.assert_refused(&image, &[digest.trim_start_matches("sha256:")]);
}

#[test]
fn hostile_flipped_byte_in_a_chunk_blob() {
    let env = Env::new();
    let image = Image::ordinary();
    let written = image.write(&env.ocidir());
    let blob = written.blob(&image.layers[2].digest());
    let mut bytes = fs_err::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs_err::write(&blob, bytes).unwrap();
    env.assert_import_refused(&["digest"]);
}

#[test]
fn hostile_wrong_uncompressed_digest_annotation() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image
        .last()
        .annotate(CHUNK_DIGEST, &digest_of(b"something else"));
    env.assert_refused(&image, &["digest", "disk.img"]);
}

#[test]
fn hostile_truncated_zstd_stream() {
    let env = Env::new();
    let mut image = Image::ordinary();
    let half = image.last().blob.len() / 2;
    image.last().blob.truncate(half);
    env.assert_refused(&image, &["decompress"]);
}

#[test]
fn hostile_truncated_gzip_stream() {
    let env = Env::new();
    let mut image = Image::new(&domain_xml("disk.img", "raw", ""))
        .legacy_file("disk.img", &Noise::new(3).bytes(20_000));
    let half = image.last().blob.len() / 2;
    image.last().blob.truncate(half);
    env.assert_refused(&image, &["truncated", "legacy disk layer"]);
}

#[test]
fn hostile_file_of_one_exbibyte() {
    let env = Env::new();
    let mut image = Image::ordinary();
    for layer in &mut image.layers[1..] {
        layer.annotate(FILE_SIZE, &(1u64 << 60).to_string());
    }
    env.assert_refused(&image, &["disk.img", "1152921504606846976"]);
}

#[test]
fn hostile_chunk_longer_than_its_file() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image.last().annotate(LENGTH, "100000");
    env.assert_refused(&image, &["disk.img"]);
}

#[test]
fn hostile_chunk_of_one_exbibyte() {
    let env = Env::new();
    let mut image =
        Image::new(&domain_xml("disk.img", "raw", "")).chunked_file("disk.img", &[1; 100], 100);
    image.last().annotate(LENGTH, &(1u64 << 60).to_string());
    image.last().annotate(FILE_SIZE, &(1u64 << 60).to_string());
    env.assert_refused(&image, &["disk.img", "1152921504606846976"]);
}

#[test]
fn hostile_domain_xml_layer_claims_one_gibibyte() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image.layers[0].claimed_size = Some(1 << 30);
    env.assert_refused(&image, &["1073741824"]);
}

#[test]
fn hostile_chunk_blob_claims_another_size() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image.last().claimed_size = Some(1 << 40);
    env.assert_refused(&image, &["1099511627776"]);
}

#[test]
fn hostile_path_traversal_in_file_titles() {
    let env = Env::new();
    for name in [
        "../x",
        "../../etc/x",
        "a/b",
        ".hidden",
        "/etc/x",
        "x\0y",
        "x\ny",
        "",
    ] {
        let mut image = Image::ordinary();
        for layer in &mut image.layers[1..] {
            layer.annotate(TITLE, name);
        }
        env.assert_refused(&image, &["not a plain file name"]);
    }
    assert!(!std::path::Path::new("/etc/x").exists());
}

#[test]
fn hostile_path_traversal_in_legacy_gzip_file_name() {
    let env = Env::new();
    let image = Image::new(&domain_xml("x", "raw", "")).legacy_file("../../etc/x", b"owned\n");
    env.assert_refused(&image, &["../../etc/x", "plain file name"]);
    assert!(!std::path::Path::new("/etc/x").exists());
}

#[test]
fn hostile_domain_with_qemu_commandline() {
    let env = Env::new();
    let xml = domain_xml("disk.img", "raw", "")
        .replace("</domain>", "<qemu:commandline><qemu:arg value='-monitor'/><qemu:arg value='unix:/tmp/m,server'/></qemu:commandline></domain>");
    let mut image = Image::ordinary();
    image.layers[0] = Layer::new(crate::hostile_support::DOMAIN_TYPE, xml.into_bytes());
    env.assert_refused(&image, &["commandline", "--allow-unsafe-xml"]);
}

#[test]
fn hostile_domain_with_hostdev() {
    let env = Env::new();
    let hostdev = "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></source></hostdev>";
    let image = hostile_domain(hostdev);
    env.assert_refused(&image, &["/domain/devices/hostdev"]);
}

#[test]
fn hostile_domain_with_absolute_disk_source() {
    let env = Env::new();
    let mut image = Image::ordinary();
    image.layers[0] = Layer::new(
        crate::hostile_support::DOMAIN_TYPE,
        domain_xml("/dev/sda", "raw", "").into_bytes(),
    );
    env.assert_refused(&image, &["/domain/devices/disk", "/dev/sda"]);
}

#[test]
fn hostile_domain_with_serial_to_a_host_file_is_refused() {
    // Import removes the exporting host's live state first (images of sardinecake 0.4.2 carry
    // it), but a character device that writes to a host file is refused by name.
    let env = Env::new();
    let target = env.path().join("x");
    let serial = format!(
        "<serial type='file'><source path='{}'/><target port='0'/></serial>",
        target.display()
    );
    env.assert_refused(&hostile_domain(&serial), &["/domain/devices/serial"]);
    assert!(!target.exists());
}

/// The definition of domain `name`, as libvirt has it.
fn dumpxml(name: &str) -> String {
    let output = sardine_testbed::netns_command("virsh")
        .args(["-c", &sardine_testbed::libvirt_uri(), "dumpxml", name])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "virsh dumpxml {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The ordinary image with `devices` added to its domain's `<devices>`.
fn hostile_domain(devices: &str) -> Image {
    let mut image = Image::ordinary();
    image.layers[0] = Layer::new(
        crate::hostile_support::DOMAIN_TYPE,
        domain_xml("disk.img", "raw", devices).into_bytes(),
    );
    image
}

/// A qcow2 image made by `qemu-img create` with `options`, read back as bytes.
fn qcow2(env: &Env, options: &[&str]) -> Vec<u8> {
    let path = env.path().join("made.qcow2");
    let output = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .args(options)
        .arg(&path)
        .arg("1M")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "qemu-img: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = fs_err::read(&path).unwrap();
    fs_err::remove_file(&path).unwrap();
    bytes
}

#[test]
fn hostile_qcow2_backing_file_on_the_host() {
    let env = Env::new();
    for backing in ["/etc/shadow", "/dev/sda", "../base.qcow2"] {
        let bytes = qcow2(&env, &["-u", "-F", "raw", "-b", backing]);
        let image = Image::new(&domain_xml("disk.qcow2", "qcow2", "")).chunked_file(
            "disk.qcow2",
            &bytes,
            65536,
        );
        env.assert_refused(&image, &["disk.qcow2", backing, "backing file"]);
    }
}

#[test]
fn hostile_qcow2_external_data_file() {
    let env = Env::new();
    let data = env.path().join("data.raw");
    let option = format!("data_file={},data_file_raw=on", data.display());
    let bytes = qcow2(&env, &["-o", &option]);
    fs_err::remove_file(&data).unwrap();
    let image = Image::new(&domain_xml("disk.qcow2", "qcow2", "")).chunked_file(
        "disk.qcow2",
        &bytes,
        65536,
    );
    env.assert_refused(&image, &["disk.qcow2", "external data file"]);
}

#[test]
fn hostile_unsafe_xml_is_defined_unchanged_with_allow_unsafe_xml() {
    // A trusted image may log to a host file and pass QEMU options: --allow-unsafe-xml defines it
    // as it is, with a warning. (Only defined, never started.)
    let env = Env::new();
    let log = env.path().join("serial.log");
    let serial = format!(
        "<serial type='file'><source path='{}'/><target port='0'/></serial>",
        log.display()
    );
    let xml = domain_xml("disk.img", "raw", &serial).replace(
        "</domain>",
        "<qemu:commandline><qemu:arg value='-no-reboot'/></qemu:commandline></domain>",
    );
    let mut image = Image::ordinary();
    image.layers[0] = Layer::new(crate::hostile_support::DOMAIN_TYPE, xml.into_bytes());
    image.write(&env.ocidir());

    let name = sardine_testbed::unique_name("hostile-allowed");
    let guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    let refused = env.import(&name, &[]);
    assert!(!refused.status.success());
    assert!(!guard.exists());

    let output = env.import(&name, &["--allow-unsafe-xml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--allow-unsafe-xml"),
        "no warning: {stderr}"
    );
    assert!(guard.exists());
    let defined = dumpxml(&name);
    assert!(
        defined.contains(&format!("<source path='{}'/>", log.display())),
        "{defined}"
    );
    assert!(
        defined.contains("<qemu:arg value='-no-reboot'/>"),
        "{defined}"
    );
    assert!(!log.exists());
}

#[test]
fn hostile_domain_takes_host_resources_from_other_jobs() {
    // Each would let one VM take what the host's other VMs need: memory dumps on the host's
    // disk, real-time CPU scheduling, unswappable or preallocated memory, huge pages, pinning.
    let env = Env::new();
    for (fragment, path) in [
        ("<on_crash>coredump-destroy</on_crash>", "/domain/on_crash"),
        (
            "<cputune><vcpusched vcpus='0' scheduler='fifo' priority='99'/></cputune>",
            "/domain/cputune/vcpusched",
        ),
        (
            "<cputune><emulatorsched scheduler='rr' priority='1'/></cputune>",
            "/domain/cputune/emulatorsched",
        ),
        (
            "<memoryBacking><locked/></memoryBacking>",
            "/domain/memoryBacking/locked",
        ),
        (
            "<memoryBacking><hugepages/></memoryBacking>",
            "/domain/memoryBacking/hugepages",
        ),
        (
            "<memoryBacking><allocation mode='immediate'/></memoryBacking>",
            "/domain/memoryBacking/allocation",
        ),
        (
            "<cputune><vcpupin vcpu='0' cpuset='0'/></cputune>",
            "/domain/cputune/vcpupin",
        ),
        (
            "<cputune><shares>262144</shares></cputune>",
            "/domain/cputune/shares",
        ),
        (
            "<numatune><memory nodeset='0'/></numatune>",
            "/domain/numatune",
        ),
    ] {
        let xml =
            domain_xml("disk.img", "raw", "").replace("</domain>", &format!("{fragment}</domain>"));
        let mut image = Image::ordinary();
        image.layers[0] = Layer::new(crate::hostile_support::DOMAIN_TYPE, xml.into_bytes());
        env.assert_refused(&image, &[path]);
    }
}

#[test]
fn hostile_layers_the_config_does_not_vouch_for() {
    // An image that borrows a popular image's config (its diff_ids) with a domain XML of its
    // own: the config's digest would name its base VM, so the config must vouch for it.
    let env = Env::new();
    let mut image = Image::ordinary();
    image.layers[0].diff_id = Some(digest_of(b"another image's domain XML"));
    env.assert_refused(&image, &["not among the diff_ids"]);
}

#[test]
fn hostile_a_vm_named_as_the_image_id_is_not_reused() {
    let env = Env::new();
    Image::ordinary().write(&env.ocidir());
    let inspected: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", IMAGE, "--format", "json"])).unwrap();
    let id = inspected["id"].as_str().unwrap().to_owned();
    // Somebody else's VM with the image ID for a name (an old import elsewhere, a trap).
    let foreign = sardine_testbed::VmGuard::adopt(&id).unwrap();
    let xml = env.path().join("foreign.xml");
    fs_err::write(
        &xml,
        format!(
            "<domain type='qemu'><name>{id}</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64'>hvm</type></os></domain>"
        ),
    )
    .unwrap();
    let defined = sardine_testbed::netns_command("virsh")
        .args(["-c", &sardine_testbed::libvirt_uri(), "define"])
        .arg(&xml)
        .output()
        .unwrap();
    assert!(defined.status.success(), "{defined:?}");

    let vmdir = env.vmdir().to_string_lossy().into_owned();
    let import = |what: &str| -> serde_json::Value {
        let out = env.ok(&["import", IMAGE, "-o", &vmdir, "--format", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"))
    };
    let first = import("first import");
    let name = first["name"].as_str().unwrap().to_owned();
    let _ours = sardine_testbed::VmGuard::adopt(&name).unwrap();
    assert!(name.starts_with(&format!("{id}-")) && name != id, "{first}");
    assert_eq!(first["existed"], false, "{first}");
    assert!(foreign.exists(), "the foreign VM is left alone");
    let again = import("second import");
    assert_eq!(
        (again["name"].as_str(), &again["existed"]),
        (Some(name.as_str()), &serde_json::json!(true)),
        "{again}"
    );
}
