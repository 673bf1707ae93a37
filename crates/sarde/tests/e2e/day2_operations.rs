//! End-to-end tests of the day-two commands: `prune` (space budget, garbage collection),
//! `list` and `list --vms` (JSON snapshots), `ip` and `ssh` against the tiny guest, and the
//! generated completions and man pages. Real libvirt, inside the test bed's namespace.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use sardine_testbed::{
    Registry, RegistryAuth, TestVm, VmGuard, VmOptions, guest_image, unique_name,
};
use serde_json::{Value, json};

use crate::common::{Workdir, code};

const DAY: Duration = Duration::from_secs(86_400);

fn test_vm(label: &str) -> TestVm {
    TestVm::create(&VmOptions {
        label: label.into(),
        ..VmOptions::default()
    })
    .unwrap()
}

/// A sardine config with the tiny guest's credentials, so `sarde ssh` can log in.
fn guest_config(work: &Workdir) -> PathBuf {
    let image = guest_image();
    let path = work.path().join("sardine.json");
    let config = json!({"users": [{"username": image.user, "password": image.password}]});
    fs_err::write(&path, config.to_string()).unwrap();
    path
}

fn json_of(work: &Workdir, args: &[&str]) -> Value {
    let text = work.ok(args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("sarde {args:?} printed no JSON ({e}):\n{text}"))
}

/// Every blob digest an image references (manifest, config, layers).
fn image_blobs(ocidir: &Path, reference: &str) -> BTreeSet<String> {
    let reference = Reference::parse(reference).unwrap();
    let repo = Store::new(ocidir).repo(reference.name()).unwrap();
    let descriptor = repo.resolve(reference.tag(), None).unwrap();
    let manifest = repo.read_manifest(&descriptor).unwrap();
    let mut blobs: BTreeSet<String> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    blobs.insert(manifest.config.digest.clone());
    blobs.insert(descriptor.digest);
    blobs
}

/// The blob files of a repository and of the store's pool, as `repo:<hex>` / `pool:<hex>`.
fn blob_files(ocidir: &Path, repo: &str) -> BTreeSet<String> {
    let list = |dir: PathBuf, prefix: &str| -> Vec<String> {
        match fs_err::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| format!("{prefix}:{}", e.unwrap().file_name().to_string_lossy()))
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    let mut files: BTreeSet<String> = list(ocidir.join(repo).join("blobs/sha256"), "repo")
        .into_iter()
        .collect();
    files.extend(list(ocidir.join(".sardine/blobs/sha256"), "pool"));
    files
}

/// Makes an image look last used `days` ago.
fn set_last_use(ocidir: &Path, reference: &str, days: u32) {
    let reference = Reference::parse(reference).unwrap();
    let repo = Store::new(ocidir).repo(reference.name()).unwrap();
    let digest = repo.resolve(reference.tag(), None).unwrap().digest;
    let marker = ocidir
        .join(".sardine/used")
        .join(digest.trim_start_matches("sha256:"));
    let file = fs_err::OpenOptions::new()
        .append(true)
        .open(&marker)
        .unwrap();
    file.set_modified(SystemTime::now() - DAY * days).unwrap();
}

fn listed_images(work: &Workdir) -> Vec<String> {
    let listed = json_of(work, &["list", "--format", "json"]);
    let mut names: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["name"].as_str().unwrap(),
                e["tag"].as_str().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    names
}

fn image_size(work: &Workdir, name: &str) -> u64 {
    let listed = json_of(work, &["list", "--format", "json"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {listed}"));
    entry["size"].as_u64().unwrap()
}

fn removed_images(report: &Value) -> Vec<String> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn day2_gc_removes_exactly_the_unreferenced_blobs() {
    let work = Workdir::new("gc");
    let vm = test_vm("gc");
    let config = guest_config(&work);
    work.ok(&[
        "export",
        vm.name(),
        "gc/tiny:1",
        "--chunksize",
        "1MiB",
        "--vmconfig",
        config.to_str().unwrap(),
    ]);
    work.ok(&["export", vm.name(), "gc/tiny:2", "--chunksize", "2MiB"]);
    let first = image_blobs(&work.ocidir(), "gc/tiny:1");
    let second = image_blobs(&work.ocidir(), "gc/tiny:2");
    let unreferenced: BTreeSet<&String> = first.difference(&second).collect();
    assert!(
        unreferenced.len() > 3,
        "the images should differ in their chunks: {unreferenced:?}"
    );
    work.ok(&["rm", "--image", "gc/tiny:1"]);

    let before = blob_files(&work.ocidir(), "gc/tiny");
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|f| !unreferenced.iter().any(|d| f.ends_with(&d[7..])))
        .cloned()
        .collect();
    assert_eq!(
        before.len() - expected.len(),
        2 * unreferenced.len(),
        "one repository link and one pool file per blob"
    );

    let dry = json_of(&work, &["prune", "--dry-run", "--format", "json"]);
    assert_eq!(
        blob_files(&work.ocidir(), "gc/tiny"),
        before,
        "a dry run removes nothing"
    );
    assert_eq!(
        dry["garbage_files"],
        (2 * unreferenced.len()) as u64,
        "{dry}"
    );
    assert!(
        dry["images"].as_array().unwrap().is_empty(),
        "without options prune removes no image: {dry}"
    );

    let real = json_of(&work, &["prune", "--format", "json"]);
    assert_eq!(blob_files(&work.ocidir(), "gc/tiny"), expected);
    assert_eq!(real["garbage_files"], dry["garbage_files"]);
    assert_eq!(real["garbage_freed"], dry["garbage_freed"]);
    assert_eq!(real["freed"], dry["freed"]);
    assert!(real["freed"].as_u64().unwrap() > 0, "{real}");
    // What is left is intact and nothing more is garbage.
    work.ok(&["getconfig", "gc/tiny:2"]);
    let again = work.ok(&["prune"]);
    assert_eq!(again, "removed garbage: 0 files, 0 B\nfreed 0 B in total");
}

#[test]
fn day2_prune_with_a_space_budget_keeps_recent_images_and_what_clones_need() {
    let work = Workdir::new("budget");
    let vm = test_vm("budget");
    let vmdir = work.vmdir();
    let vmdir = vmdir.to_str().unwrap();
    // Different chunk sizes give each image chunks of its own.
    for (image, chunks) in [
        ("base:1", "512KiB"),
        ("old:1", "1MiB"),
        ("mid:1", "2MiB"),
        ("new:1", "4MiB"),
    ] {
        work.ok(&["export", vm.name(), image, "--chunksize", chunks]);
    }
    drop(vm);
    let base_vm = work.ok(&["import", "base:1", "-o", vmdir]);
    // Careful: a VmGuard removes its domain when dropped, so keep this one for the checks.
    let base_guard = VmGuard::adopt(&base_vm).unwrap();
    let clone_name = unique_name("budget-clone");
    let clone = VmGuard::adopt(&clone_name).unwrap();
    work.ok(&["clone", "base:1", &clone_name, "-o", vmdir]);
    // The base is the least recently used of all; it still stays, its clone needs it.
    for (image, days) in [("base:1", 9), ("old:1", 3), ("mid:1", 2), ("new:1", 0)] {
        set_last_use(&work.ocidir(), image, days);
    }
    let budget = image_size(&work, "base") + image_size(&work, "new");
    let budget = budget.to_string();

    let all = ["base:1", "mid:1", "new:1", "old:1"];
    let dry = json_of(
        &work,
        &[
            "prune",
            "--space-budget",
            &budget,
            "--dry-run",
            "--format",
            "json",
        ],
    );
    assert_eq!(removed_images(&dry), ["old", "mid"], "{dry}");
    assert_eq!(listed_images(&work), all, "a dry run removes nothing");

    let real = json_of(
        &work,
        &["prune", "--space-budget", &budget, "--format", "json"],
    );
    assert_eq!(removed_images(&real), ["old", "mid"]);
    assert_eq!(
        real["freed"], dry["freed"],
        "the dry run predicted the space freed"
    );
    assert!(
        real["store_size"].as_u64().unwrap() <= budget.parse().unwrap(),
        "{real}"
    );
    assert_eq!(listed_images(&work), ["base:1", "new:1"]);
    assert!(
        clone.exists() && base_guard.exists(),
        "prune removed a VM a clone needs"
    );

    // Even a budget of nothing keeps what the clone needs.
    let text = work.ok(&["prune", "--space-budget", "0"]);
    assert!(text.contains("removed image new:1"), "{text}");
    assert!(!text.contains("base"), "{text}");
    assert_eq!(listed_images(&work), ["base:1"]);

    // Once the clone is gone, the image goes, and with it its imported VM.
    work.ok(&["rm", "--vm", &clone_name]);
    let text = work.ok(&["prune", "--space-budget", "0"]);
    assert!(
        text.contains("removed image base:1") && text.contains(&format!("removed VM {base_vm}")),
        "{text}"
    );
    assert!(listed_images(&work).is_empty());
    assert!(!base_guard.exists());
    assert!(!work.vmdir().join(&base_vm).exists());
}

/// Runs sarde with the configuration file `config`; requires success, returns stderr.
fn ok_with_config(work: &Workdir, config: &Path, args: &[&str]) -> String {
    let output = work
        .command(args)
        .env("SARDE_CONF_FILES", config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "sarde {args:?} failed with {}:\n{stderr}",
        output.status
    );
    stderr
}

/// The images of the store by short name (`old` for `<registry>/auto/old:1`).
fn short_names(work: &Workdir) -> Vec<String> {
    let short = |name: &str| {
        name.rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(":1")
            .to_owned()
    };
    listed_images(work).iter().map(|name| short(name)).collect()
}

/// A hostile registry that serves `manifest` for every tag (and nothing else: no blobs).
/// Returns `127.0.0.1:PORT`.
fn claiming_registry(manifest: Value) -> String {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let body = serde_json::to_vec(&manifest).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(&stream);
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let (status, content) = if request_line.contains("/manifests/") {
                ("200 OK", body.as_slice())
            } else if request_line.starts_with("GET /v2/ ") {
                ("200 OK", &b"{}"[..])
            } else {
                ("404 Not Found", &b""[..])
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            );
            let mut stream = &stream;
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(content);
        }
    });
    addr
}

/// A hostile manifest that reuses a real image's blobs but claims huge sizes: the fetch is
/// refused before anything is downloaded, and auto-prune evicts none of the cached images.
#[test]
fn day2_a_manifest_claiming_a_petabyte_evicts_nothing() {
    let work = Workdir::new("claims");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let cached = format!("{}/claims/cached:1", registry.host());
    let vm = test_vm("claims");
    work.ok(&["export", vm.name(), &cached]);
    drop(vm);
    work.ok(&["push", &cached]);
    let reference = Reference::parse(&cached).unwrap();
    let repo = Store::new(work.ocidir()).repo(reference.name()).unwrap();
    let entry = repo.resolve(Some("1"), None).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&repo.read_manifest_bytes(&entry).unwrap().0).unwrap();
    let config = work.path().join("sarde.ini");
    fs_err::write(&config, "[DEFAULT]\nauto-prune = yes\nkeep-free = 0\n").unwrap();
    // 1 PiB: over the largest image a fetch accepts; 3 TiB: within it, but more than this
    // file system can make room for, even by evicting every cached image.
    for (claim, message) in [(1u64 << 50, "is too large"), (3 << 40, "no room for")] {
        manifest["layers"][1]["size"] = json!(claim);
        let huge = format!("{}/claims/huge:1", claiming_registry(manifest.clone()));
        let output = work
            .command(&["fetch", &huge])
            .env("SARDE_CONF_FILES", &config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(message),
            "{stderr}"
        );
        assert!(!stderr.contains("removed image"), "{stderr}");
        assert_eq!(short_names(&work), ["cached"], "{stderr}");
    }
}

#[test]
fn day2_auto_prune_makes_room_for_fetch_and_import() {
    let work = Workdir::new("autoprune");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let name = |image: &str| format!("{}/auto/{image}:1", registry.host());
    let vm = test_vm("autoprune");
    for (image, chunks) in [
        ("old", "512KiB"),
        ("mid", "1MiB"),
        ("new", "2MiB"),
        ("exported", "4MiB"),
    ] {
        work.ok(&["export", vm.name(), &name(image), "--chunksize", chunks]);
    }
    drop(vm);
    for image in ["old", "mid", "new"] {
        work.ok(&["push", &name(image)]);
    }
    let vmdir = work.vmdir();
    let vmdir = vmdir.to_str().unwrap();
    let mid_guard = VmGuard::adopt(&work.ok(&["import", &name("mid"), "-o", vmdir])).unwrap();
    for (image, days) in [("exported", 10), ("old", 5), ("mid", 3), ("new", 1)] {
        set_last_use(&work.ocidir(), &name(image), days);
    }
    work.ok(&["rm", "--image", &name("new")]);
    // A petabyte to keep free: the space is always short, so everything that may go goes.
    let config = work.path().join("sarde.ini");
    fs_err::write(&config, "[DEFAULT]\nauto-prune = yes\nkeep-free = 1PiB\n").unwrap();

    // The off switch on the command line beats the configuration.
    let log = ok_with_config(&work, &config, &["fetch", &name("new"), "--no-auto-prune"]);
    assert!(!log.contains("auto-prune"), "{log}");
    assert_eq!(short_names(&work), ["exported", "mid", "new", "old"]);
    work.ok(&["rm", "--image", &name("new")]);

    // Fetched (or pushed) images go, least recently used first, with the base VM only they
    // needed; the image only exported here stays, and so does the one being fetched.
    let log = ok_with_config(&work, &config, &["fetch", &name("new")]);
    let (old_at, mid_at) = (
        log.find("removed image").unwrap_or(usize::MAX),
        log.find("/auto/mid@").unwrap(),
    );
    assert!(
        old_at < mid_at && log[old_at..].contains("/auto/old@"),
        "old first, then mid:\n{log}"
    );
    assert!(
        log.contains(&format!("removed VM {}", mid_guard.name())),
        "{log}"
    );
    assert!(log.contains("still has less than"), "{log}");
    assert_eq!(short_names(&work), ["exported", "new"]);
    assert!(!mid_guard.exists());
    work.ok(&["getconfig", &name("new")]);

    // Import prunes too, never the image it imports.
    work.ok(&["fetch", &name("old")]);
    let new_name = unique_name("autoprune-new");
    let new_guard = VmGuard::adopt(&new_name).unwrap();
    let log = ok_with_config(
        &work,
        &config,
        &["import", &name("new"), "-n", &new_name, "-o", vmdir],
    );
    assert!(log.contains("/auto/old@"), "{log}");
    assert_eq!(short_names(&work), ["exported", "new"]);
    assert!(new_guard.exists());
}

#[test]
fn day2_prune_older_than_and_interrupted_imports() {
    let work = Workdir::new("older");
    let vm = test_vm("older");
    work.ok(&["export", vm.name(), "stale:1"]);
    work.ok(&["export", vm.name(), "fresh:1"]);
    drop(vm);
    set_last_use(&work.ocidir(), "stale:1", 40);
    let vmdir = work.vmdir();
    let base_vm = work.ok(&["import", "fresh:1", "-o", vmdir.to_str().unwrap()]);
    let base_guard = VmGuard::adopt(&base_vm).unwrap();
    // An import killed an hour ago left its staging directory next to the VM's.
    let leftover = vmdir.join(".sha256:dead.importing");
    fs_err::create_dir_all(&leftover).unwrap();
    fs_err::write(leftover.join("data.qcow2"), vec![1u8; 1 << 20]).unwrap();
    let old = SystemTime::now() - Duration::from_secs(7200);
    fs_err::File::open(&leftover)
        .unwrap()
        .set_modified(old)
        .unwrap();

    let text = work.ok(&["prune", "--older-than", "30d"]);
    assert!(text.contains("removed image stale:1"), "{text}");
    assert!(
        text.contains(&format!(
            "removed interrupted import {}",
            leftover.display()
        )),
        "{text}"
    );
    assert!(!text.contains("fresh"), "{text}");
    assert!(!leftover.exists());
    assert_eq!(listed_images(&work), ["fresh:1"]);
    assert!(base_guard.exists(), "the VM of a kept image stays");

    // `rm` of the image leaves its imported VM; the next prune removes it, since the VM records
    // the store it was imported from.
    work.ok(&["rm", "--image", "fresh:1"]);
    assert!(base_guard.exists());
    let text = work.ok(&["prune", "--older-than", "30d"]);
    assert!(text.contains(&format!("removed VM {base_vm}")), "{text}");
    assert!(!base_guard.exists());
}

/// Replaces what changes from run to run (digests, times, sizes, paths, unique names).
fn normalise(value: &Value, work: &Path, names: &[(&str, &str)]) -> Value {
    match value {
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| normalise(v, work, names)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| {
                    let v = match (key.as_str(), v) {
                        ("size" | "disk_usage", Value::Number(n))
                            if n.as_u64().is_some_and(|n| n > 0) =>
                        {
                            json!("<bytes>")
                        }
                        ("last_used", Value::String(s)) if chrono_like(s) => json!("<time>"),
                        _ => normalise(v, work, names),
                    };
                    (key.clone(), v)
                })
                .collect(),
        ),
        Value::String(s) => {
            let mut s = s.replace(&work.display().to_string(), "<work>");
            for (name, placeholder) in names {
                s = s.replace(name, placeholder);
            }
            json!(hide_digests(&s))
        }
        other => other.clone(),
    }
}

/// `sha256:<64 hex digits>` anywhere in `text` becomes `sha256:<hex>`.
fn hide_digests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("sha256:") {
        let after = &rest[start + 7..];
        let hex_len = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(&rest[..start + 7]);
        if hex_len == 64 {
            out.push_str("<hex>");
            rest = &after[64..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn chrono_like(s: &str) -> bool {
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[test]
fn day2_list_json_snapshots() {
    let work = Workdir::new("snapshot");
    let vm = test_vm("snapshot");
    let config = guest_config(&work);
    work.ok(&[
        "export",
        vm.name(),
        "localhost:5000/snap/tiny:1",
        "--vmconfig",
        config.to_str().unwrap(),
    ]);
    drop(vm);
    let vmdir = work.vmdir();
    let base = work.ok(&[
        "import",
        "localhost:5000/snap/tiny:1",
        "-o",
        vmdir.to_str().unwrap(),
    ]);
    let _base_guard = VmGuard::adopt(&base).unwrap();
    let clone_name = unique_name("snap-clone");
    let _clone_guard = VmGuard::adopt(&clone_name).unwrap();
    work.ok(&[
        "clone",
        "localhost:5000/snap/tiny:1",
        &clone_name,
        "-o",
        vmdir.to_str().unwrap(),
    ]);
    let names = [(clone_name.as_str(), "<clone>")];

    let images = normalise(
        &json_of(&work, &["list", "--format", "json"]),
        work.path(),
        &names,
    );
    assert_eq!(
        images,
        json!([{
            "source": "oci",
            "name": "localhost:5000/snap/tiny",
            "tag": "1",
            "digest": "sha256:<hex>",
            "id": "sha256:<hex>",
            "state": false,
            "size": "<bytes>",
            "last_used": "<time>",
        }])
    );

    // Only this test's VMs: others run in parallel on the same libvirt.
    let all = json_of(&work, &["list", "--vms", "--format", "json"]);
    let ours: Vec<Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == base.as_str() || v["name"] == clone_name.as_str())
        .cloned()
        .collect();
    let vms = normalise(&Value::Array(ours), work.path(), &names);
    let expected_image = "localhost:5000/snap/tiny:1";
    assert_eq!(
        vms,
        json!([
            {
                "name": "<clone>",
                "state": "stopped",
                "transient": false,
                "image": expected_image,
                "image_id": "sha256:<hex>",
                "store": "<work>/oci",
                "base": "sha256:<hex>",
                "directory": "<work>/vms/<clone>",
                "disk_usage": "<bytes>",
            },
            {
                "name": "sha256:<hex>",
                "state": "stopped",
                "transient": false,
                "image": expected_image,
                "image_id": "sha256:<hex>",
                "store": "<work>/oci",
                "base": null,
                "directory": "<work>/vms/sha256:<hex>",
                "disk_usage": "<bytes>",
            },
        ])
    );
    // The clone's base is exactly the imported VM, and the image ID is the base's name.
    let clone_entry = all
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == clone_name.as_str())
        .unwrap();
    assert_eq!(clone_entry["base"], base.as_str());
    assert_eq!(clone_entry["image_id"], base.as_str());
    let text = work.ok(&["list", "--vms"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&clone_name) && l.contains(&base)),
        "{text}"
    );
}

#[test]
fn day2_ip_and_ssh_reach_the_guest() {
    let work = Workdir::new("reach");
    let vm = test_vm("reach");
    let config = guest_config(&work);
    work.ok(&[
        "export",
        vm.name(),
        "reach/tiny:1",
        "--vmconfig",
        config.to_str().unwrap(),
    ]);
    drop(vm);
    let vmdir = work.vmdir();
    let base = work.ok(&["import", "reach/tiny:1", "-o", vmdir.to_str().unwrap()]);
    let _base_guard = VmGuard::adopt(&base).unwrap();
    let name = unique_name("reach-clone");
    let guard = VmGuard::adopt(&name).unwrap();
    work.ok(&[
        "clone",
        "reach/tiny:1",
        &name,
        "-o",
        vmdir.to_str().unwrap(),
        "--start",
    ]);

    let printed = work.ok(&["ip", "--wait", "60", &name]);
    let lease = guard.wait_for_ip(Duration::from_secs(5)).unwrap();
    assert_eq!(printed, lease.to_string());

    let uname = work.ok(&["ssh", &name, "--", "uname", "-a"]);
    assert!(uname.starts_with("Linux "), "{uname}");
    let direct = guard.ssh("uname -r").unwrap();
    assert!(
        uname.contains(direct.stdout.trim()),
        "{uname} vs {direct:?}"
    );

    let listed = json_of(&work, &["list", "--vms", "--format", "json"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name.as_str())
        .unwrap();
    assert_eq!(entry["state"], "running");
    let missing = work.run(&["ip", "no-such-vm-here"]);
    assert_eq!(code(&missing), 3);
}

#[test]
fn day2_completions_and_man_pages_are_generated() {
    let work = Workdir::new("generate");
    for (shell, marker) in [
        ("bash", "complete"),
        ("zsh", "#compdef sarde"),
        ("fish", "complete -c sarde"),
    ] {
        let script = work.ok(&["completions", shell]);
        assert!(
            script.contains(marker) && script.contains("prune"),
            "{shell}:\n{script}"
        );
    }
    let out = work.path().join("man");
    fs_err::create_dir_all(&out).unwrap();
    work.ok(&["man", "--all", "--out-dir", out.to_str().unwrap()]);
    for page in [
        "sarde.1",
        "sarde-prune.1",
        "sarde-list.1",
        "sarde-ssh.1",
        "sarde-ip.1",
    ] {
        let text = fs_err::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is not roff:\n{text}"
        );
    }
    let prune = fs_err::read_to_string(out.join("sarde-prune.1")).unwrap();
    assert!(prune.contains("space\\-budget"), "{prune}");
}
