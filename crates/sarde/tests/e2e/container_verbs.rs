//! The verbs a docker, podman or tart user types: `inspect`, `tag`, `start`, `stop`, against
//! a real store and libvirt; and the answers sarde owes them on day one (`prune --dry-run` says
//! what it would do, `ip --source agent` asks on a connection that may, `rm --vm` does not
//! claim to remove files it cannot find).

use std::process::Command;

use crate::common::{Workdir, code, output_of, text};
use sardine_testbed::{TestVm, VmGuard, VmOptions, guest_image, unique_name};
use serde_json::Value;

fn test_vm(label: &str) -> TestVm {
    TestVm::create(&VmOptions {
        label: label.into(),
        ..VmOptions::default()
    })
    .unwrap()
}

/// Exports `vm` as `image` with the tiny guest's credentials; returns what export printed.
fn export(work: &Workdir, vm: &TestVm, image: &str) -> String {
    let guest = guest_image();
    let config = work.path().join("sardine.json");
    let json = serde_json::json!({
        "users": [{"username": guest.user, "password": guest.password}],
        "services": [{"service": "ssh", "port": 22, "protocol": "tcp"}],
    });
    fs_err::write(&config, json.to_string()).unwrap();
    work.ok(&[
        "export",
        vm.name(),
        image,
        "--vmconfig",
        config.to_str().unwrap(),
    ])
}

fn inspect_json(work: &Workdir, image: &str) -> Value {
    serde_json::from_str(&work.ok(&["inspect", image, "--format", "json"])).unwrap()
}

#[test]
fn verbs_inspect_and_tag_describe_and_rename_local_images() {
    let work = Workdir::new("verbs");
    let vm = test_vm("verbs");
    let id = export(&work, &vm, "verbs/tiny:1");
    let info = inspect_json(&work, "verbs/tiny:1");
    assert_eq!(info["id"], format!("sha256:{id}"));
    assert_eq!(info["format"], "chunked");
    assert_eq!(info["architecture"], "amd64");
    assert_eq!(info["sardine_config"]["users"][0]["username"], "root");
    let files = info["files"].as_array().unwrap();
    let disk = files.iter().find(|f| f["name"] == "data.qcow2").unwrap();
    assert_eq!(disk["role"], "disk");
    let disk_size = fs_err::metadata(vm.dir().join("data.qcow2")).unwrap().len();
    assert_eq!(disk["size"], disk_size);
    assert!(files.iter().any(|f| f["role"] == "kernel"));
    let total: u64 = files.iter().map(|f| f["size"].as_u64().unwrap()).sum();
    assert_eq!(info["uncompressed_size"], total);
    let layers = info["manifest"]["layers"].as_array().unwrap();
    assert_eq!(info["layers"], layers.len());
    assert!(info["compressed_size"].as_u64().unwrap() > 0);

    let described = work.ok(&["inspect", "verbs/tiny:1"]);
    assert!(
        described.contains(&format!("Image ID:        {id}")),
        "{described}"
    );
    assert!(described.contains("Users:           root"), "{described}");
    assert!(
        described.contains("Services:        ssh 22 tcp"),
        "{described}"
    );
    assert!(
        described
            .lines()
            .any(|l| l.trim_start().starts_with("data.qcow2")),
        "{described}"
    );

    assert_eq!(
        work.ok(&["tag", "verbs/tiny:1", "other/name:2"]),
        "other/name:2"
    );
    let tagged = inspect_json(&work, "other/name:2");
    assert_eq!(tagged["manifest_digest"], info["manifest_digest"]);
    assert!(work.ok(&["list"]).contains("other/name"));
    let refused = work.run(&[
        "tag",
        "verbs/tiny:1",
        &format!("x/y@{}", info["manifest_digest"].as_str().unwrap()),
    ]);
    assert_ne!(code(&refused), 0);
    assert_eq!(code(&work.run(&["inspect", "verbs/missing:1"])), 3);

    // --dry-run says what prune would remove, and removes nothing.
    let dry = work.run(&["prune", "--dry-run", "--older-than", "0"]);
    let log = text(&dry.stderr);
    assert!(log.contains("would remove image"), "{log}");
    assert!(!log.contains("removed image"), "{log}");
    assert!(work.ok(&["list"]).contains("other/name"));
}

#[test]
fn verbs_start_stop_and_agent_boot() {
    let work = Workdir::new("power");
    let vm = test_vm("power");
    work.ok(&["start", vm.name()]);
    work.ok(&["ip", "--wait", "60", vm.name()]);
    // Asked on a read-write connection: the tiny guest has no agent, and libvirt says so
    // (0.4.2 and earlier sarde asked on a read-only connection, which libvirt refuses).
    let agent = work.run(&["ip", "--source", "agent", vm.name()]);
    assert_ne!(code(&agent), 0);
    let message = text(&agent.stderr);
    assert!(!message.contains("read only access"), "{message}");
    assert!(message.contains("agent"), "{message}");
    assert!(vm.ssh("true").is_ok());
    work.ok(&["stop", "--timeout", "60", vm.name()]);
    assert!(!is_running(vm.name()), "stop left {} running", vm.name());
    work.ok(&["start", vm.name()]);
    work.ok(&["stop", "--force", vm.name()]);
    assert!(!is_running(vm.name()));
    // Stopping a VM that is off is fine; an unknown one is not found.
    work.ok(&["stop", vm.name()]);
    assert_eq!(code(&work.run(&["stop", "no-such-vm-here"])), 3);
}

fn is_running(name: &str) -> bool {
    let output = output_of(Command::new("virsh").args([
        "-c",
        &sardine_testbed::libvirt_uri(),
        "domstate",
        name,
    ]));
    text(&output.stdout).trim() == "running"
}

#[test]
fn verbs_rm_refuses_a_vm_whose_files_it_cannot_locate() {
    let work = Workdir::new("rm-relative");
    let name = unique_name("relative");
    let guard = VmGuard::adopt(&name).unwrap();
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64'>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='sha256:0a/disk.qcow2'/><target dev='vda' bus='virtio'/></disk>\
         </devices></domain>"
    );
    let file = work.path().join("relative.xml");
    fs_err::write(&file, xml).unwrap();
    let defined = output_of(Command::new("virsh").args([
        "-c",
        &sardine_testbed::libvirt_uri(),
        "define",
        file.to_str().unwrap(),
    ]));
    assert!(defined.status.success(), "{}", text(&defined.stderr));
    let refused = work.run(&["rm", "--vm", &name]);
    assert_ne!(code(&refused), 0);
    let message = text(&refused.stderr);
    assert!(message.contains("sha256:0a/disk.qcow2"), "{message}");
    assert!(message.contains("nothing was removed"), "{message}");
    assert!(guard.exists(), "a refused rm must leave the VM");
    let forced = work.run(&["rm", "--vm", "--force", &name]);
    assert_eq!(code(&forced), 0, "{}", text(&forced.stderr));
    assert!(text(&forced.stderr).contains("not deleting sha256:0a/disk.qcow2"));
    assert!(!guard.exists());
}
