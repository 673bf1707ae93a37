//! `sarde build` with real mmdebstrap, apt, qemu-storage-daemon, libvirt and guests: the test
//! bed's build files (`crates/sardine-testbed/images`), which `scripts/build-images` builds
//! into the shared build cache before the tests (with Debian's mirror in reach). The tests
//! build the same files again with that cache, into their own stores: unchanged images come
//! from the cache, changed ones are rebuilt here, offline, unless they install packages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sardine_testbed::{PrefixGuard, Registry, RegistryAuth, VmGuard};

use crate::common::{Workdir, expect_ok, output_of, publish_tiny, text};

fn images_dir() -> PathBuf {
    sardine_testbed::build_files_dir()
}

fn shared_cache() -> PathBuf {
    sardine_testbed::shared_build_cache()
}

/// `sarde build -f FILE --cache-dir CACHE --format json ARGS` in `env`'s store: the reports.
fn build(env: &Workdir, file: &Path, cache: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    build_in(env, &env.ocidir(), file, cache, args)
}

/// Like [`build`], in the store `ocidir`.
fn build_in(
    env: &Workdir,
    ocidir: &Path,
    file: &Path,
    cache: &Path,
    args: &[&str],
) -> Vec<serde_json::Value> {
    let file = file.display().to_string();
    let cache = cache.display().to_string();
    let mut all = vec![
        "build",
        "-f",
        &file,
        "--cache-dir",
        &cache,
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let out = expect_ok(&output_of(&mut build_command(env, ocidir, &all[1..])), &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `sarde build ARGS` in the store `ocidir`, with the test bed's `SOURCE_DATE_EPOCH`.
fn build_command(env: &Workdir, ocidir: &Path, args: &[&str]) -> Command {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let mut command = env.command_in(ocidir, &all);
    command.env(
        "SOURCE_DATE_EPOCH",
        sardine_testbed::BUILD_EPOCH.to_string(),
    );
    command
}

/// Runs `sarde build ARGS` in `ocidir` and returns what it did.
fn run_build(env: &Workdir, ocidir: &Path, args: &[&str]) -> std::process::Output {
    output_of(&mut build_command(env, ocidir, args))
}

/// A guard of the base VMs that importing the reported images makes (any store's).
fn base_vms(reports: &[serde_json::Value]) -> PrefixGuard {
    let mut guard = PrefixGuard::new();
    for report in reports {
        if let Some(id) = report["id"].as_str() {
            guard.add(&format!("sha256:{id}"));
        }
    }
    guard
}

/// The outcome of each image of a build's reports, by name.
fn outcomes(reports: &[serde_json::Value]) -> Vec<(String, String)> {
    reports
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The complete cache entry of `image` (there is one after a build).
fn entry(cache: &Path, image: &str) -> PathBuf {
    fs_err::read_dir(cache.join(image))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("content").exists())
        .unwrap_or_else(|| panic!("no cache entry of {image}"))
}

/// `sarde run IMAGE -- SCRIPT` in `env`: what the guest printed.
fn run_in_guest(env: &Workdir, image: &str, extra: &[&str], script: &str) -> String {
    run_in_guest_in(env, &env.ocidir(), image, extra, script)
}

/// Like [`run_in_guest`], with the store `ocidir`.
fn run_in_guest_in(
    env: &Workdir,
    ocidir: &Path,
    image: &str,
    extra: &[&str],
    script: &str,
) -> String {
    let vmdir = env.vmdir().display().to_string();
    let mut args = vec!["run", "--vmdir", &vmdir];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "--", script]);
    env.ok_in(ocidir, &args)
}

#[test]
fn build_debian_images_boot_with_their_changes() {
    let env = Workdir::new("build-boot");
    let reports = build(
        &env,
        &images_dir().join("debian.yaml"),
        &shared_cache(),
        &[],
    );
    let _bases = base_vms(&reports);
    let names: Vec<String> = outcomes(&reports).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["debian", "debian-dev", "debian-leaf"]);

    // The derived disk is an overlay on the root image's, not a copy.
    let dev = entry(&shared_cache(), "debian-dev");
    let info = output_of(
        Command::new("qemu-img")
            .args(["info", "--backing-chain"])
            .arg(dev.join("debian-dev.qcow2")),
    );
    let info = expect_ok(&info, "qemu-img info");
    assert!(info.contains("backing file: debian.qcow2"), "{info}");
    let overlay = fs_err::metadata(dev.join("debian-dev.qcow2"))
        .unwrap()
        .len();
    let base = fs_err::metadata(dev.join("debian.qcow2")).unwrap().len();
    assert!(overlay * 4 < base, "overlay {overlay} bytes, base {base}");

    // A clone of the derived image has the package, the file, the command's effect and the
    // key; `sarde ssh` logs in with the image's VM config (sarde, with its password).
    let mine = sardine_testbed::unique_name("built");
    let mine_guard = VmGuard::adopt(&mine).unwrap();
    let vmdir = env.vmdir().display().to_string();
    env.ok(&["clone", "debian-dev", &mine, "--vmdir", &vmdir, "--start"]);
    let out = env.ok(&[
        "ssh",
        &mine,
        "--",
        "hello; cat /opt/files/greeting.txt /etc/sarde-ran ~/.ssh/authorized_keys; id -un; sudo -n true && echo sudo-ok",
    ]);
    mine_guard.shutdown(crate::common::SHUTDOWN).unwrap();
    for wanted in [
        "Hello, world!",
        "hello from the build host",
        "ran",
        "test@sarde",
        "sarde",
        "sudo-ok",
    ] {
        assert!(out.contains(wanted), "{wanted:?} missing from {out:?}");
    }
    // The root image boots too, without what its child added.
    let out = run_in_guest(
        &env,
        "debian",
        &[],
        "test -e /usr/bin/hello || echo root-without-hello; cat /etc/hostname",
    );
    assert!(
        out.contains("root-without-hello") && out.contains("debian"),
        "{out}"
    );
}

#[test]
fn build_cache_reuses_and_rebuilds_only_what_changed() {
    let env = Workdir::new("build-cache");
    // The build file moved elsewhere, its files with it: the keys are the same.
    let dir = env.path().join("project");
    fs_err::create_dir_all(dir.join("files")).unwrap();
    fs_err::copy(
        images_dir().join("files/greeting.txt"),
        dir.join("files/greeting.txt"),
    )
    .unwrap();
    let original = fs_err::read_to_string(images_dir().join("debian.yaml")).unwrap();
    let file = dir.join("debian.yaml");
    fs_err::write(&file, &original).unwrap();
    let cache = env.path().join("cache");
    sardine_testbed::copy_build_cache(&cache);

    let first = build(&env, &file, &cache, &[]);
    assert!(
        outcomes(&first).iter().all(|(_, o)| o == "cached"),
        "{first:?}"
    );
    let again = std::time::Instant::now();
    let second = build(&env, &file, &cache, &[]);
    let elapsed = again.elapsed();
    assert!(
        outcomes(&second).iter().all(|(_, o)| o == "cached"),
        "{second:?}"
    );
    // Same store, same images: nothing is even exported again.
    assert_eq!(first[2]["id"], second[2]["id"]);
    eprintln!("a build with nothing changed took {elapsed:.2?}");

    // One action changes: only that image (a leaf) is rebuilt; a dry run says so first.
    fs_err::write(&file, original.replace("leaf-one", "leaf-two")).unwrap();
    let dry = build(&env, &file, &cache, &["--dry-run"]);
    assert_eq!(
        outcomes(&dry),
        [
            ("debian".into(), "cached".into()),
            ("debian-dev".into(), "cached".into()),
            ("debian-leaf".into(), "would build".into())
        ]
    );
    assert!(
        dry[2]["reason"].as_str().unwrap().contains("changed"),
        "{dry:?}"
    );
    let changed = build(&env, &file, &cache, &[]);
    assert_eq!(
        outcomes(&changed),
        [
            ("debian".into(), "cached".into()),
            ("debian-dev".into(), "cached".into()),
            ("debian-leaf".into(), "built".into())
        ]
    );
    let leaf = entry(&cache, "debian-leaf");
    let info = expect_ok(
        &output_of(
            Command::new("qemu-img")
                .args(["info", "--backing-chain"])
                .arg(leaf.join("debian-leaf.qcow2")),
        ),
        "qemu-img",
    );
    assert!(
        info.contains("backing file: debian-dev.qcow2")
            && info.contains("backing file: debian.qcow2"),
        "{info}"
    );
    // A copied-in file's content is part of the key: its change rebuilds its image and the
    // child, and -i limits the build to an image and its parents.
    fs_err::write(dir.join("files/greeting.txt"), "changed\n").unwrap();
    let dry = build(&env, &file, &cache, &["--dry-run"]);
    assert_eq!(
        outcomes(&dry),
        [
            ("debian".into(), "cached".into()),
            ("debian-dev".into(), "would build".into()),
            ("debian-leaf".into(), "would build".into())
        ]
    );
    assert!(
        dry[2]["reason"].as_str().unwrap().contains("parent"),
        "{dry:?}"
    );
    let dry = build(&env, &file, &cache, &["--dry-run", "-i", "debian-dev"]);
    assert_eq!(
        outcomes(&dry),
        [
            ("debian".into(), "cached".into()),
            ("debian-dev".into(), "would build".into())
        ]
    );
    let forced = build(
        &env,
        &file,
        &cache,
        &["--force-rebuild", "-i", "debian-leaf", "--dry-run"],
    );
    assert!(
        outcomes(&forced).iter().all(|(_, o)| o == "would build"),
        "{forced:?}"
    );
}

#[test]
fn build_refuses_bad_input_and_leaves_nothing() {
    let env = Workdir::new("build-bad");
    let cache = env.path().join("cache");
    sardine_testbed::copy_build_cache(&cache);
    let dir = env.path();
    fs_err::create_dir_all(dir.join("files")).unwrap();
    fs_err::copy(
        images_dir().join("files/greeting.txt"),
        dir.join("files/greeting.txt"),
    )
    .unwrap();
    // The test bed's file, whose images the cache has, and one image more.
    let base = fs_err::read_to_string(images_dir().join("debian.yaml")).unwrap();
    let cases: [(&str, String, i32, &[&str]); 3] = [
        (
            "unknown action",
            format!(
                "{base}  - name: odd\n    parent: debian\n    actions:\n      - frobnicate: x\n"
            ),
            2,
            &["unknown variant `frobnicate`", "images[3].actions[0]"],
        ),
        (
            "missing parent",
            "images:\n  - name: orphan\n    parent: nowhere\n".into(),
            3,
            &["image orphan", "parent nowhere"],
        ),
        (
            "cycle",
            "images:\n  - {name: a, parent: b}\n  - {name: b, parent: a}\n".into(),
            2,
            &["cycle: a -> b -> a"],
        ),
    ];
    for (what, yaml, code, wanted) in cases {
        let file = dir.join(format!("{}.yaml", what.replace(' ', "-")));
        fs_err::write(&file, yaml).unwrap();
        let out = run_build(
            &env,
            &env.ocidir(),
            &[
                "-f",
                &file.display().to_string(),
                "--cache-dir",
                &cache.display().to_string(),
            ],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{what}: {w:?} missing from {stderr}");
        }
        assert!(stderr.contains("hint:"), "{what}: {stderr}");
    }

    // A failing command: the error names the image and the step; no image, no cache entry
    // and no staging directory remain.
    let file = dir.join("failing.yaml");
    fs_err::write(
        &file,
        format!("{base}  - name: broken\n    parent: debian\n    actions:\n      - mkdir: /opt/x\n      - run-command: echo about to fail; exit 3\n"),
    )
    .unwrap();
    let out = run_build(
        &env,
        &env.ocidir(),
        &[
            "-f",
            &file.display().to_string(),
            "--cache-dir",
            &cache.display().to_string(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("image broken: action 2 (run-command) failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("about to fail"),
        "the command's output: {stderr}"
    );
    assert_nothing_left(&env, &cache, "broken");

    // A package that does not exist needs the mirror to be told apart: scripts/build-images
    // checks that case outside the test namespace.
}

fn assert_nothing_left(env: &Workdir, cache: &Path, image: &str) {
    assert_nothing_left_in(env, &env.ocidir(), cache, image);
}

/// Like [`assert_nothing_left`], with the store `ocidir`.
fn assert_nothing_left_in(env: &Workdir, ocidir: &Path, cache: &Path, image: &str) {
    let listed = env.ok_in(ocidir, &["list"]);
    assert!(!listed.contains(image), "{image} is in the store: {listed}");
    let left: Vec<_> = fs_err::read_dir(cache.join(image))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the cache of {image}: {left:?}");
}

/// The blobs a `docker-registry` stores.
fn registry_blobs(registry: &Registry) -> BTreeSet<String> {
    let root = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256");
    let mut blobs = BTreeSet::new();
    for prefix in fs_err::read_dir(&root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        for blob in fs_err::read_dir(prefix.path())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            blobs.insert(blob.file_name().to_string_lossy().into_owned());
        }
    }
    blobs
}

/// The layer and config digests (bare hex) of an image of the store.
fn image_blobs(env: &Workdir, repo: &str) -> BTreeSet<String> {
    let store = sardine_oci::layout::Store::new(env.ocidir());
    let repo = store.repo(repo).unwrap();
    let manifest = repo
        .read_manifest(&repo.resolve(Some("latest"), None).unwrap())
        .unwrap();
    std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .map(|d| d.digest.trim_start_matches("sha256:").to_owned())
        .collect()
}

#[test]
fn build_derived_push_uploads_only_the_overlay_and_another_host_boots_it() {
    let env = Workdir::new("build-push");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let prefix = format!("{}/built/", registry.host());
    let cache = env.path().join("cache");
    sardine_testbed::copy_build_cache(&cache);
    let reports = build(
        &env,
        &images_dir().join("debian.yaml"),
        &cache,
        &["--tag", &prefix, "-i", "debian-dev"],
    );
    let _bases = base_vms(&reports);
    let root = format!("{prefix}debian");
    let dev = format!("{prefix}debian-dev");
    env.ok(&["push", &root]);
    let before = registry_blobs(&registry);
    env.ok(&["push", &dev]);
    let added: BTreeSet<String> = registry_blobs(&registry)
        .difference(&before)
        .cloned()
        .collect();
    let own: BTreeSet<String> = image_blobs(&env, &format!("{prefix}debian-dev"))
        .difference(&image_blobs(&env, &format!("{prefix}debian")))
        .cloned()
        .collect();
    // The overlay's chunks, the domain, the VM config, the config and the manifest: nothing
    // of the root image's disk.
    let manifest_blobs = added.difference(&own).count();
    assert_eq!(manifest_blobs, 1, "added {added:?}, own {own:?}");
    assert!(own.is_subset(&added), "added {added:?}, own {own:?}");
    assert!(
        own.len() < 12,
        "{} blobs of its own: more than an overlay",
        own.len()
    );

    // Another host (an empty store) runs it from the registry.
    let fresh = env.other_store("fresh");
    let vmdir = env.vmdir().display().to_string();
    let out = expect_ok(
        &env.run_in(
            &fresh,
            &[
                "run",
                "--vmdir",
                &vmdir,
                &dev,
                "--",
                "cat /opt/files/greeting.txt; hello",
            ],
        ),
        "run from the registry",
    );
    assert!(
        out.contains("hello from the build host") && out.contains("Hello, world!"),
        "{out}"
    );
}

#[test]
fn build_lvh_images_boot() {
    let env = Workdir::new("build-lvh");
    let cache = env.path().join("cache");
    sardine_testbed::copy_build_cache(&cache);
    // lvh reads host paths relative to the working directory: a key of this test's own there.
    let work = env.path().join("lvh");
    fs_err::create_dir_all(&work).unwrap();
    let key = work.join("id");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let file = images_dir().join("images.json").display().to_string();
    let cache_arg = cache.display().to_string();
    let mut command = build_command(
        &env,
        &env.ocidir(),
        &[
            "-f",
            &file,
            "--pkg-repo",
            "bookworm",
            "--domain-type",
            "qemu",
            "--network",
            "sarde-test",
            "--cache-dir",
            &cache_arg,
            "--format",
            "json",
        ],
    );
    command.current_dir(&work);
    let out = expect_ok(&output_of(&mut command), "sarde build images.json");
    let reports: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let _bases = base_vms(&reports);
    // The root comes from the cache; the image with this test's key is built here.
    assert_eq!(
        outcomes(&reports),
        [
            ("base.qcow2".into(), "cached".into()),
            ("test.qcow2".into(), "built".into())
        ]
    );
    let key_arg = key.display().to_string();
    let out = run_in_guest(
        &env,
        "test.qcow2",
        &["-l", "root", "-i", &key_arg],
        "cat /etc/lvh-link; hostname; tail -n 1 /etc/motd; stat -c %a /root/.ssh/authorized_keys",
    );
    for wanted in [
        "lvh-ok",
        "lvh-test",
        "built by sarde from an lvh file",
        "600",
    ] {
        assert!(out.contains(wanted), "{wanted:?} missing from {out:?}");
    }
}

#[test]
fn build_steps_boot_the_tiny_guest_and_keep_what_they_wrote() {
    let env = Workdir::new("build-steps");
    // The parent: the tiny guest, exported with its login and pushed to a registry; the build
    // runs in another store, which fetches it. The build imports it as its base VM, which the
    // guard removes.
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let parent = format!("{}/vms/tiny:1", registry.host());
    let parent_vm = publish_tiny(&env, &parent, true);
    let mut bases = PrefixGuard::new();
    bases.add(parent_vm.name());
    let store = env.other_store("builder");

    fs_err::write(env.path().join("upload.txt"), "uploaded by a step\n").unwrap();
    let file = env.path().join("steps.yaml");
    fs_err::write(
        &file,
        format!("images:\n  - name: tiny-built\n    parent: {parent}\n    steps:\n      - ssh: echo built-over-ssh > /data/marker && sync\n      - ssh-upload: {{file: upload.txt, dest: /data/uploaded}}\n"),
    )
    .unwrap();
    let cache = env.path().join("cache");
    let reports = build_in(&env, &store, &file, &cache, &[]);
    assert_eq!(outcomes(&reports), [("tiny-built".into(), "built".into())]);
    let built_id = reports[0]["id"].as_str().unwrap().to_owned();
    bases.add(&format!("sha256:{built_id}"));
    // No VM of the build is left.
    let listed = output_of(Command::new("virsh").args([
        "-c",
        &sardine_testbed::libvirt_uri(),
        "list",
        "--all",
        "--name",
    ]));
    assert!(
        !text(&listed.stdout).contains("sarde-build-"),
        "{}",
        text(&listed.stdout)
    );

    // The new image is an overlay on the parent's disk and carries what the steps wrote.
    let entry = entry(&cache, "tiny-built");
    let info = expect_ok(
        &output_of(
            Command::new("qemu-img")
                .args(["info", "--backing-chain"])
                .arg(entry.join("tiny-built.qcow2")),
        ),
        "qemu-img",
    );
    assert!(info.contains("backing file: data.qcow2"), "{info}");
    let out = run_in_guest_in(
        &env,
        &store,
        "tiny-built",
        &[],
        "cat /data/marker /data/uploaded",
    );
    assert!(
        out.contains("built-over-ssh") && out.contains("uploaded by a step"),
        "{out}"
    );

    // A failing step names the image and the step, and nothing is kept.
    fs_err::write(
        &file,
        format!("images:\n  - name: tiny-broken\n    parent: {parent}\n    steps:\n      - ssh: echo step-output; exit 4\n"),
    )
    .unwrap();
    let out = run_build(
        &env,
        &store,
        &[
            "-f",
            &file.display().to_string(),
            "--cache-dir",
            &cache.display().to_string(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("image tiny-broken: step 1 (ssh) failed") && stderr.contains("step-output"),
        "{stderr}"
    );
    assert_nothing_left_in(&env, &store, &cache, "tiny-broken");
}
