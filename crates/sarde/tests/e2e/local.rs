//! End-to-end tests of the local side (export, import, list, getconfig, clone, rm) against the
//! real libvirt daemon and the tiny guest, inside the test bed's namespace.

use std::collections::HashSet;
use std::path::Path;

use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use sardine_testbed::{TestVm, VmGuard, VmOptions, file_digest, unique_name};
use sardine_vm::format::{ImageFile, ImageLayers};

use crate::common::{SHUTDOWN, Workdir, allocated, code};

fn chain_vm(label: &str) -> TestVm {
    TestVm::create(&VmOptions {
        label: label.into(),
        backing_chain: true,
        ..VmOptions::default()
    })
    .unwrap()
}

/// Runs a command in the guest and requires success.
fn in_guest(vm: &TestVm, command: &str) -> String {
    let output = vm.ssh(command).unwrap();
    assert_eq!(
        output.code,
        Some(0),
        "{command}: {output:?}\nconsole:\n{}",
        vm.console_log()
    );
    output.stdout
}

/// The (blob digest, uncompressed length) of every disk chunk of an image in the store.
fn chunk_blobs(ocidir: &Path, reference: &str) -> Vec<(String, u64)> {
    let reference = Reference::parse(reference).unwrap();
    let repo = Store::new(ocidir).repo(reference.name()).unwrap();
    let descriptor = repo.resolve(reference.tag(), None).unwrap();
    let manifest = repo.read_manifest(&descriptor).unwrap();
    ImageLayers::from_manifest(&manifest)
        .unwrap()
        .files
        .into_iter()
        .flat_map(|file| match file {
            ImageFile::Chunked { chunks, .. } => chunks,
            ImageFile::Legacy { .. } => Vec::new(),
        })
        .map(|chunk| (chunk.blob.digest, chunk.length))
        .collect()
}

#[test]
fn local_roundtrip_guest_with_backing_chain_survives_export_and_import() {
    let work = Workdir::new("roundtrip");
    let vm = chain_vm("roundtrip");
    vm.start().unwrap();
    let marker = unique_name("marker");
    in_guest(
        &vm,
        &format!(
            "echo {marker} > /data/marker && dd if=/dev/urandom of=/data/random bs=1M count=2 2>/dev/null && sync"
        ),
    );
    vm.shutdown(SHUTDOWN).unwrap();

    let image = "roundtrip/tiny:1";
    let id = work.ok(&["export", vm.name(), image, "--chunksize", "1MiB"]);
    assert_eq!(id.len(), 64, "export prints the image ID as bare hex: {id}");
    let originals: Vec<(String, String, u64)> =
        ["base.qcow2", "data.qcow2", "vmlinuz", "initrd.img"]
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    file_digest(&vm.dir().join(f)),
                    allocated(&vm.dir().join(f)),
                )
            })
            .collect();
    drop(vm); // The original VM and its files are gone.

    let name = unique_name("imported");
    let vmdir = work.vmdir();
    let printed = work.ok(&["import", image, "-n", &name, "-o", vmdir.to_str().unwrap()]);
    assert_eq!(printed, name);
    let guard = VmGuard::adopt(&name).unwrap();
    for (file, digest, original_allocation) in &originals {
        let imported = vmdir.join(&name).join(file);
        assert_eq!(
            &file_digest(&imported),
            digest,
            "{file} differs after the round trip"
        );
        assert!(
            allocated(&imported) <= original_allocation + (64 << 10),
            "{file} is less sparse: {} > {original_allocation}",
            allocated(&imported)
        );
    }
    // Importing again returns at once with the same name.
    assert_eq!(
        work.ok(&["import", image, "-n", &name, "-o", vmdir.to_str().unwrap()]),
        name
    );

    guard.start().unwrap();
    let output = guard.ssh("cat /data/marker").unwrap();
    assert_eq!(output.stdout.trim(), marker, "{output:?}");
}

#[test]
fn local_reexport_guest_writes_only_changed_chunks() {
    let work = Workdir::new("reexport");
    let vm = chain_vm("reexport");
    vm.start().unwrap();
    in_guest(
        &vm,
        "dd if=/dev/urandom of=/data/first bs=1M count=2 2>/dev/null && sync",
    );
    vm.shutdown(SHUTDOWN).unwrap();
    work.ok(&[
        "export",
        vm.name(),
        "reexport/tiny:1",
        "--chunksize",
        "1MiB",
    ]);
    let first: HashSet<_> = chunk_blobs(&work.ocidir(), "reexport/tiny:1")
        .into_iter()
        .collect();

    // Unchanged: no new disk blob.
    let pool = work.ocidir().join(".sardine/blobs/sha256");
    let before = fs_err::read_dir(&pool).unwrap().count();
    work.ok(&[
        "export",
        vm.name(),
        "reexport/tiny:2",
        "--chunksize",
        "1MiB",
    ]);
    let second: HashSet<_> = chunk_blobs(&work.ocidir(), "reexport/tiny:2")
        .into_iter()
        .collect();
    assert_eq!(first, second, "an unchanged VM exported different chunks");
    let after = fs_err::read_dir(&pool).unwrap().count();
    assert!(
        after - before <= 2,
        "only a config and a manifest may be new, got {} new blobs",
        after - before
    );

    // A few MiB changed: only their chunks are new.
    vm.start().unwrap();
    in_guest(
        &vm,
        "dd if=/dev/urandom of=/data/second bs=1M count=3 2>/dev/null && sync",
    );
    vm.shutdown(SHUTDOWN).unwrap();
    work.ok(&[
        "export",
        vm.name(),
        "reexport/tiny:3",
        "--chunksize",
        "1MiB",
    ]);
    let third = chunk_blobs(&work.ocidir(), "reexport/tiny:3");
    let new: Vec<_> = third.iter().filter(|c| !first.contains(c)).collect();
    let new_bytes: u64 = new.iter().map(|(_, length)| length).sum();
    assert!(!new.is_empty(), "writing 3 MiB changed no chunk");
    assert!(
        new_bytes <= 8 << 20,
        "{new_bytes} bytes of new chunks for a 3 MiB change ({} of {} chunks)",
        new.len(),
        third.len()
    );
    assert!(
        third.len() >= 2 * new.len(),
        "{} of {} chunks are new",
        new.len(),
        third.len()
    );
}

#[test]
fn local_clone_guest_is_copy_on_write_and_rm_respects_dependents() {
    let work = Workdir::new("clone");
    let vm = chain_vm("clone");
    let config = work.path().join("sardine.json");
    fs_err::write(
        &config,
        r#"{"users":[{"username":"root","password":"sardine"}]}"#,
    )
    .unwrap();
    work.ok(&[
        "export",
        vm.name(),
        "clone/tiny:1",
        "--vmconfig",
        config.to_str().unwrap(),
    ]);
    drop(vm);

    let vmdir = work.vmdir();
    let vmdir = vmdir.to_str().unwrap();
    let base = work.ok(&["import", "clone/tiny:1", "-o", vmdir]);
    assert!(
        base.starts_with("sha256:"),
        "the default name is the image ID: {base}"
    );
    let _base_guard = VmGuard::adopt(&base).unwrap();
    let base_disk = work.vmdir().join(&base).join("data.qcow2");
    let base_digest = file_digest(&base_disk);

    let clone_name = unique_name("clone");
    let clone = VmGuard::adopt(&clone_name).unwrap();
    assert_eq!(
        work.ok(&["clone", "clone/tiny:1", &clone_name, "-o", vmdir, "--start"]),
        clone_name
    );
    let output = clone
        .ssh("echo changed > /data/clone-only && sync && cat /data/README")
        .unwrap();
    assert!(
        output.stdout.contains("sardinecake test guest data disk"),
        "{output:?}"
    );

    // `sarde ssh` uses the image's credentials and passes the exit status through.
    let ssh = work.run(&["ssh", &clone_name, "--", "cat /data/clone-only; exit 7"]);
    assert_eq!(code(&ssh), 7, "{}", String::from_utf8_lossy(&ssh.stderr));
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), "changed");

    // The base may not go while its clone exists.
    let refused = work.run(&["rm", "--vm", &base]);
    assert_ne!(code(&refused), 0);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&clone_name),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    clone.shutdown(SHUTDOWN).unwrap();
    work.ok(&["rm", "--vm", &clone_name]);
    assert!(
        !work.vmdir().join(&clone_name).exists(),
        "the clone's directory stays after rm"
    );
    assert_eq!(
        file_digest(&base_disk),
        base_digest,
        "the clone wrote into its base"
    );
    work.ok(&["rm", "--vm", &base]);
    assert!(!work.vmdir().join(&base).exists());

    // An ephemeral clone leaves nothing when it stops.
    work.ok(&["import", "clone/tiny:1", "-o", vmdir]);
    let _base_guard = VmGuard::adopt(&base).unwrap();
    let ephemeral = unique_name("ephemeral");
    let guard = VmGuard::adopt(&ephemeral).unwrap();
    work.ok(&[
        "clone",
        "clone/tiny:1",
        &ephemeral,
        "-o",
        vmdir,
        "--ephemeral",
    ]);
    assert!(
        !work.vmdir().join(&ephemeral).exists(),
        "an ephemeral clone keeps no directory"
    );
    // Only a booted guest answers the ACPI power button.
    assert_eq!(guard.ssh("true").unwrap().code, Some(0));
    guard.shutdown(SHUTDOWN).unwrap();
    assert!(!guard.exists(), "an ephemeral clone is gone once it stops");
}

#[test]
fn local_list_and_getconfig_report_images() {
    let work = Workdir::new("list");
    let vm = TestVm::create(&VmOptions {
        label: "list".into(),
        ..VmOptions::default()
    })
    .unwrap();
    assert_eq!(work.ok(&["list", "--format", "json"]), "[]");
    let config = work.path().join("sardine.json");
    fs_err::write(&config, r#"{"users":[{"username":"u","password":"p"}],"services":[{"service":"ssh","port":22,"protocol":"tcp"}]}"#).unwrap();
    let id = work.ok(&[
        "export",
        vm.name(),
        "localhost:5000/list/tiny:1",
        "--vmconfig",
        config.to_str().unwrap(),
    ]);
    work.ok(&["export", vm.name(), "localhost:5000/list/tiny:1"]); // re-tagging replaces the tag

    let listed: serde_json::Value =
        serde_json::from_str(&work.ok(&["list", "--format", "json"])).unwrap();
    let entries = listed.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    let keys: Vec<&str> = entries[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "source",
            "name",
            "tag",
            "digest",
            "id",
            "state",
            "size",
            "last_used"
        ]
    );
    assert_eq!(entries[0]["name"], "localhost:5000/list/tiny");
    assert_eq!(entries[0]["tag"], "1");
    assert_eq!(entries[0]["state"], serde_json::Value::Null);
    assert_ne!(
        entries[0]["id"],
        format!("sha256:{id}"),
        "the second export is a new image"
    );
    let text = work.ok(&["list"]);
    assert!(text.starts_with("SOURCE\tNAME"), "{text}");
    assert!(text.contains("localhost:5000/list/tiny:1"), "{text}");

    // The tag now points to the export without a config.
    assert_eq!(work.ok(&["getconfig", "localhost:5000/list/tiny:1"]), "");
    work.ok(&[
        "export",
        vm.name(),
        "localhost:5000/list/tiny:2",
        "--vmconfig",
        config.to_str().unwrap(),
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&work.ok(&["getconfig", "localhost:5000/list/tiny:2"])).unwrap();
    assert_eq!(config["users"][0]["username"], "u");
    assert_eq!(config["services"][0]["port"], 22);

    let missing = work.run(&["getconfig", "localhost:5000/list/absent:1"]);
    assert_eq!(code(&missing), 3, "a missing image is 'not found'");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[test]
fn local_export_refuses_backing_files_elsewhere_with_the_fixing_commands() {
    let work = Workdir::new("chain-hint");
    let base_dir = work.path().join("bases");
    let vm_dir = work.path().join("vm");
    fs_err::create_dir_all(&base_dir).unwrap();
    fs_err::create_dir_all(&vm_dir).unwrap();
    let qemu_img = |args: &[&str]| sardine_testbed::qemu_img(&vm_dir, args).unwrap();
    let base = base_dir.join("base.qcow2");
    let top = vm_dir.join("top.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "16M"]);
    sardine_testbed::create_overlay(&vm_dir, base.to_str().unwrap(), top.to_str().unwrap())
        .unwrap();
    let xml = vm_dir.join("domain.xml");
    fs_err::write(
        &xml,
        format!(
            "<domain type='qemu'><name>chain</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64'>hvm</type></os><devices><disk type='file' device='disk'>\
             <driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/>\
             </disk></devices></domain>",
            top.display()
        ),
    )
    .unwrap();

    let output = work.run(&[
        "export",
        "--libvirtconfig",
        xml.to_str().unwrap(),
        "chain",
        "chain/vm:1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(code(&output), 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cp -n --sparse=always '{}' '{}'",
            base.display(),
            vm_dir.join("base.qcow2").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "qemu-img rebase -F qcow2 -u -b 'base.qcow2' '{}'",
            top.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        work.ok(&["list", "--format", "json"]),
        "[]",
        "nothing may be tagged after a refused export"
    );

    // Doing what the hint says makes the export work.
    fs_err::rename(&base, vm_dir.join("base.qcow2")).unwrap();
    qemu_img(&[
        "rebase",
        "-F",
        "qcow2",
        "-u",
        "-b",
        "base.qcow2",
        top.to_str().unwrap(),
    ]);
    work.ok(&[
        "export",
        "--libvirtconfig",
        xml.to_str().unwrap(),
        "chain",
        "chain/vm:1",
    ]);
}
