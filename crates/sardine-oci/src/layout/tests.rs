//! Tests of the local store: layout files, blobs, tags, listing, dedupe, gc, locking, skopeo.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::media_types::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};

struct Image {
    manifest: Digest,
    size: u64,
    config: Digest,
    layer: Digest,
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("oci"));
    (dir, store)
}

/// Writes config, layer and manifest blobs (not tagged).
fn put_image(repo: &Repo, seed: &str, layer: &[u8]) -> Image {
    let config_json = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":"{seed}"}}"#
    );
    let (config, config_size) = repo.put_blob_bytes(config_json.as_bytes()).unwrap();
    let (layer_digest, layer_size) = repo.put_blob_bytes(layer).unwrap();
    let manifest = Manifest::new(
        Descriptor::new(OCI_CONFIG, &config, config_size),
        vec![Descriptor::new(
            media_types::DOMAIN_XML,
            &layer_digest,
            layer_size,
        )],
    );
    let (digest, size) = repo.put_blob_bytes(&manifest.to_json()).unwrap();
    Image {
        manifest: digest,
        size,
        config,
        layer: layer_digest,
    }
}

fn tag(repo: &Repo, image: &Image, tag: Option<&str>) {
    repo.set_tag(&image.manifest, image.size, OCI_MANIFEST, tag)
        .unwrap();
}

fn blob_names(repo: &Repo) -> BTreeSet<Digest> {
    fs_err::read_dir(repo.blobs_dir())
        .unwrap()
        .map(|e| {
            let name = format!("sha256:{}", e.unwrap().file_name().to_string_lossy());
            Digest::parse(&name).unwrap()
        })
        .collect()
}

#[test]
fn init_writes_a_layout_that_other_tools_read() {
    let (_dir, store) = new_store();
    let repo = store.repo("localhost:5000/sardines/debian").unwrap();
    assert!(!repo.exists());
    repo.init().unwrap();
    assert!(repo.exists());
    assert_eq!(
        repo.path(),
        store.root().join("localhost:5000/sardines/debian")
    );
    assert_eq!(
        fs_err::read(repo.path().join("oci-layout")).unwrap(),
        OCI_LAYOUT_JSON
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(repo.index_path()).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    assert!(repo.blobs_dir().is_dir());
}

#[test]
fn repo_names_are_validated() {
    let (_dir, store) = new_store();
    for bad in ["../escape", "/abs", "a//b", ".sardine/x", "a/./b", ""] {
        assert!(
            matches!(store.repo(bad), Err(StoreError::InvalidReference(_))),
            "{bad}"
        );
    }
}

#[test]
fn blobs_are_verified_on_read() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let (digest, size) = repo.put_blob_bytes(b"hello").unwrap();
    assert_eq!(size, 5);
    assert_eq!(repo.read_blob(&digest, 5).unwrap(), b"hello");
    assert_eq!(repo.verify_blob(&digest).unwrap(), 5);
    assert!(matches!(
        repo.read_blob(&digest, 4),
        Err(StoreError::TooLarge { max: 4, .. })
    ));
    let missing = Digest::of(b"other");
    assert!(matches!(
        repo.read_blob(&missing, 10),
        Err(StoreError::BlobMissing { .. })
    ));

    // Corrupt the stored copy (replace the file, so the pool keeps the good one).
    let path = repo.blob_path(&digest);
    fs_err::remove_file(&path).unwrap();
    fs_err::write(&path, b"HELLO").unwrap();
    assert!(matches!(
        repo.read_blob(&digest, 5),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert!(matches!(
        repo.verify_blob(&digest),
        Err(StoreError::DigestMismatch { .. })
    ));
}

#[test]
fn retagging_replaces_instead_of_duplicating() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let one = put_image(&repo, "1", b"xml one");
    let two = put_image(&repo, "2", b"xml two");
    tag(&repo, &one, Some("latest"));
    tag(&repo, &two, Some("latest"));
    tag(&repo, &two, Some("latest"));
    tag(&repo, &one, Some("v1"));
    let index = repo.index().unwrap();
    let tags: Vec<_> = index
        .manifests
        .iter()
        .map(|d| (d.ref_name().unwrap().to_owned(), d.valid_digest().unwrap()))
        .collect();
    assert_eq!(
        tags,
        vec![
            ("latest".to_owned(), two.manifest.clone()),
            ("v1".to_owned(), one.manifest.clone())
        ]
    );
    assert_eq!(repo.resolve(None, None).unwrap().digest, two.manifest);
    assert!(repo.remove_tag("latest").unwrap());
    assert!(!repo.remove_tag("latest").unwrap());
    assert_eq!(repo.resolve(None, None).unwrap().digest, one.manifest);
    assert!(matches!(
        repo.resolve(Some("latest"), None),
        Err(StoreError::TagNotFound { .. })
    ));
    assert!(repo.remove_manifest(&one.manifest).unwrap());
    assert!(matches!(
        repo.resolve(None, None),
        Err(StoreError::EmptyRepo { .. })
    ));
}

#[test]
fn set_tag_requires_the_manifest_blob_and_a_valid_tag() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let missing = Digest::of(b"not stored");
    assert!(matches!(
        repo.set_tag(&missing, 3, OCI_MANIFEST, Some("t")),
        Err(StoreError::BlobMissing { .. })
    ));
    let image = put_image(&repo, "1", b"x");
    assert!(matches!(
        repo.set_tag(&image.manifest, image.size, OCI_MANIFEST, Some("-bad")),
        Err(StoreError::InvalidReference(_))
    ));
}

#[test]
fn resolves_an_index_written_by_0_4_2() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    repo.init().unwrap();
    let images: Vec<Image> = (0..3)
        .map(|i| put_image(&repo, &i.to_string(), b"xml"))
        .collect();
    let entry = |image: &Image, tag: Option<&str>| {
        let annotations = tag.map(|t| format!(",\n      \"annotations\": {{\n        \"org.opencontainers.image.ref.name\": \"{t}\"\n      }}"));
        format!(
            "    {{\n      \"mediaType\": \"{OCI_MANIFEST}\",\n      \"digest\": \"{}\",\n      \"size\": {}{}\n    }}",
            image.manifest,
            image.size,
            annotations.unwrap_or_default()
        )
    };
    let index = format!(
        "{{\n  \"schemaVersion\": 2,\n  \"manifests\": [\n{},\n{},\n{}\n  ]\n}}",
        entry(&images[0], Some("latest")),
        entry(&images[1], Some("latest")),
        entry(&images[2], None)
    );
    fs_err::write(repo.index_path(), index).unwrap();
    assert_eq!(
        repo.resolve(Some("latest"), None).unwrap().digest,
        images[1].manifest
    );
    assert_eq!(repo.resolve(None, None).unwrap().digest, images[1].manifest);
    assert_eq!(
        repo.resolve(None, Some(&images[0].manifest))
            .unwrap()
            .digest,
        images[0].manifest
    );
    let manifest = repo
        .read_manifest(&repo.resolve(Some("latest"), None).unwrap())
        .unwrap();
    assert_eq!(manifest.config.digest, images[1].config);

    // Re-tagging cleans up the duplicates 0.4.2 left behind.
    tag(&repo, &images[0], Some("latest"));
    let latest: Vec<_> = repo
        .index()
        .unwrap()
        .manifests
        .into_iter()
        .filter(|d| d.ref_name() == Some("latest"))
        .collect();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].digest, images[0].manifest);
}

#[test]
fn image_indexes_are_rejected_clearly() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let image = put_image(&repo, "1", b"x");
    let mut index = Index::new();
    index
        .manifests
        .push(Descriptor::new(OCI_MANIFEST, &image.manifest, image.size));
    let (digest, size) = repo.put_blob_bytes(&index.to_json()).unwrap();
    repo.set_tag(&digest, size, OCI_INDEX, Some("multi"))
        .unwrap();
    let desc = repo.resolve(Some("multi"), None).unwrap();
    assert!(matches!(
        repo.read_manifest(&desc),
        Err(StoreError::IsIndex { .. })
    ));
    // Also when the index.json entry claims to be a manifest.
    let lying = Descriptor::new(OCI_MANIFEST, &digest, size);
    assert!(matches!(
        repo.read_manifest(&lying),
        Err(StoreError::IsIndex { .. })
    ));
    let wrong_size = Descriptor::new(OCI_MANIFEST, &image.manifest, image.size + 1);
    assert!(matches!(
        repo.read_manifest(&wrong_size),
        Err(StoreError::SizeMismatch { .. })
    ));
}

#[test]
fn identical_blobs_are_stored_once_across_repositories() {
    let (_dir, store) = new_store();
    let a = store.repo("a").unwrap();
    let b = store.repo("b/c").unwrap();
    let (digest, _) = a.put_blob_bytes(b"shared disk chunk").unwrap();
    let temp = store.temp_dir().unwrap().join("chunk");
    fs_err::write(&temp, b"shared disk chunk").unwrap();
    b.commit_blob(&temp, &digest).unwrap();
    assert!(!temp.exists(), "the temp file is consumed");
    let meta_a = fs_err::metadata(a.blob_path(&digest)).unwrap();
    let meta_b = fs_err::metadata(b.blob_path(&digest)).unwrap();
    assert_eq!(meta_a.ino(), meta_b.ino());
    assert_eq!(meta_a.nlink(), 3, "pool + two repositories");
    // Committing again drops the temp and changes nothing.
    fs_err::write(&temp, b"shared disk chunk").unwrap();
    b.commit_blob(&temp, &digest).unwrap();
    assert!(!temp.exists());
    assert_eq!(fs_err::metadata(b.blob_path(&digest)).unwrap().nlink(), 3);
}

#[test]
fn gc_removes_exactly_the_unreferenced_blobs() {
    let (_dir, store) = new_store();
    let a = store.repo("a").unwrap();
    let b = store.repo("b").unwrap();
    let kept = put_image(&a, "kept", b"shared layer");
    tag(&a, &kept, Some("latest"));
    let dropped = put_image(&a, "dropped", b"only in dropped");
    tag(&a, &dropped, Some("old"));
    let (stray, _) = a.put_blob_bytes(b"stray").unwrap();
    let other = put_image(&b, "other", b"shared layer");
    tag(&b, &other, None);
    assert!(a.remove_tag("old").unwrap());

    let before = blob_names(&a);
    let dry = gc(&store, true).unwrap();
    assert_eq!(blob_names(&a), before, "a dry run removes nothing");
    let report = gc(&store, false).unwrap();
    assert_eq!(dry, report);
    let expected: BTreeSet<Digest> = [&kept.manifest, &kept.config, &kept.layer]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(blob_names(&a), expected);
    assert!(!a.has_blob(&stray));
    assert_eq!(
        blob_names(&b),
        [&other.manifest, &other.config, &other.layer]
            .into_iter()
            .cloned()
            .collect()
    );
    // Removed from a: dropped's manifest, config and layer, and the stray blob; plus their 4 pool files.
    assert_eq!(report.files, 8);
    let freed: u64 = [
        dropped.size,
        b"only in dropped".len() as u64,
        b"stray".len() as u64,
    ]
    .iter()
    .sum();
    assert!(report.bytes > freed, "{report:?}");
    let pool: Vec<_> = fs_err::read_dir(store.pool_dir()).unwrap().collect();
    assert_eq!(
        pool.len(),
        5,
        "kept image (3) + other's manifest and config (the layer is shared)"
    );
    assert_eq!(gc(&store, false).unwrap(), GcReport::default());
    a.read_manifest(&a.resolve(None, None).unwrap()).unwrap();
}

#[test]
fn gc_skips_a_repository_with_an_unreadable_manifest() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let image = put_image(&repo, "1", b"x");
    tag(&repo, &image, Some("latest"));
    let (stray, _) = repo.put_blob_bytes(b"stray").unwrap();
    let path = repo.blob_path(&image.manifest);
    fs_err::remove_file(&path).unwrap();
    fs_err::write(&path, b"garbage").unwrap();
    gc(&store, false).unwrap();
    assert!(
        repo.has_blob(&stray),
        "nothing is removed when references are unknown"
    );
}

#[test]
fn list_handles_missing_empty_and_broken_stores() {
    let (dir, store) = new_store();
    assert_eq!(store.list().unwrap(), vec![]);
    fs_err::create_dir_all(store.root()).unwrap();
    assert_eq!(store.list().unwrap(), vec![]);

    let good = store.repo("localhost:5000/sardines/debian").unwrap();
    let image = put_image(&good, "1", b"x");
    tag(&good, &image, Some("12"));
    let broken = store.repo("broken").unwrap();
    let bad_image = put_image(&broken, "2", b"y");
    tag(&broken, &bad_image, None);
    fs_err::remove_file(broken.blob_path(&bad_image.manifest)).unwrap();
    let garbage = store.repo("garbage").unwrap();
    garbage.init().unwrap();
    fs_err::write(garbage.index_path(), b"{not json").unwrap();
    // 0.4.2 accepted any directory name; such layouts are still listed.
    let legacy = store.root().join("Legacy VM");
    let legacy_repo = store.repo_unchecked("Legacy VM");
    legacy_repo.init().unwrap();
    assert!(legacy.join("index.json").is_file());

    let entries = store.list().unwrap();
    let summary: Vec<_> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.tag.as_deref(), e.id.is_some()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("broken", None, false),
            ("localhost:5000/sardines/debian", Some("12"), true)
        ]
    );
    assert_eq!(entries[1].id.as_deref(), Some(image.config.as_str()));
    assert_eq!(entries[1].digest, image.manifest);
    assert_eq!(entries[1].manifest_size, image.size);
    let names: Vec<_> = store
        .repos()
        .unwrap()
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "Legacy VM",
            "broken",
            "garbage",
            "localhost:5000/sardines/debian"
        ]
    );
    drop(dir);
}

#[test]
fn concurrent_set_tag_keeps_every_tag() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let image = put_image(&repo, "1", b"x");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let repo = repo.clone();
            let (digest, size) = (image.manifest.clone(), image.size);
            std::thread::spawn(move || {
                for round in 0..5 {
                    repo.set_tag(&digest, size, OCI_MANIFEST, Some(&format!("t{i}-{round}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(repo.index().unwrap().manifests.len(), 40);
}

#[test]
fn readers_never_see_partial_files() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    repo.init().unwrap();
    let image = put_image(&repo, "1", b"x");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (repo, done) = (repo.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut checks = 0u32;
            while !done.load(Ordering::Relaxed) {
                repo.index().unwrap();
                for name in blob_names(&repo) {
                    repo.verify_blob(&name).unwrap();
                    checks += 1;
                }
            }
            checks
        })
    };
    for i in 0..30u32 {
        repo.put_blob_bytes(&vec![u8::try_from(i).unwrap(); 256 << 10])
            .unwrap();
        tag(&repo, &image, Some(&format!("t{i}")));
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let temps: Vec<_> = fs_err::read_dir(store.temp_dir().unwrap())
        .unwrap()
        .collect();
    assert!(temps.is_empty(), "temp files are consumed");
}

#[test]
fn set_tag_works_while_holding_the_repo_lock() {
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let guard = repo.lock().unwrap();
    let image = put_image(&repo, "1", b"x");
    tag(&repo, &image, Some("latest"));
    assert!(
        guard
            .path()
            .starts_with(store.root().join(STORE_DIR).join("locks"))
    );
}

#[test]
fn lock_file_names_are_distinct() {
    let names = ["a/b", "a_b", "a%2Fb", "h:5000/a", "h_5000/a"];
    let files: BTreeSet<_> = names.iter().map(|n| lock_file_name(n)).collect();
    assert_eq!(files.len(), names.len());
    assert_eq!(lock_file_name("h:5000/a"), "h%3A5000%2Fa.lock");
}

/// Runs `skopeo inspect [--raw] oci:<dir>:<tag>` in `cwd`.
fn skopeo_inspect(cwd: &Path, dir: &str, tag: &str, raw: bool) -> Vec<u8> {
    let target = format!("oci:{dir}:{tag}");
    let mut command = std::process::Command::new("skopeo");
    command.current_dir(cwd).arg("inspect");
    if raw {
        command.arg("--raw");
    }
    let output = command.arg(&target).output().unwrap();
    assert!(
        output.status.success(),
        "{target}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn skopeo_reads_what_we_write() {
    let Ok(found) = std::process::Command::new("skopeo")
        .arg("--version")
        .output()
    else {
        eprintln!("skopeo is not installed; skipping");
        return;
    };
    assert!(found.status.success());
    let (_dir, store) = new_store();
    for name in ["sardines/vm", "localhost:5000/vm"] {
        let repo = store.repo(name).unwrap();
        let image = put_image(&repo, "1", b"<domain/>");
        tag(&repo, &image, Some("old"));
        tag(&repo, &put_image(&repo, "2", b"<domain/>"), Some("latest"));
        tag(&repo, &image, Some("latest"));
        // skopeo splits `oci:` paths at the first colon, so a `host:port` directory can only be
        // named from inside it.
        let (cwd, dir) = if name.contains(':') {
            (repo.path(), ".")
        } else {
            (store.root(), name)
        };
        let raw = skopeo_inspect(cwd, dir, "latest", true);
        assert_eq!(
            raw,
            repo.read_blob(&image.manifest, MAX_MANIFEST_SIZE).unwrap()
        );
        let parsed: serde_json::Value =
            serde_json::from_slice(&skopeo_inspect(cwd, dir, "latest", false)).unwrap();
        assert_eq!(parsed["Digest"], image.manifest.as_str());
    }
}

#[test]
fn existing_repo_accepts_legacy_names_but_not_escapes() {
    let (_dir, store) = new_store();
    store.repo_unchecked("Legacy VM").init().unwrap();
    assert_eq!(
        store.existing_repo("Legacy VM").unwrap().name(),
        "Legacy VM"
    );
    assert!(matches!(
        store.existing_repo("Other VM"),
        Err(StoreError::NoSuchRepo { .. })
    ));
    for bad in ["../x", "a/../b", "/abs", ".sardine", "a//b", ""] {
        assert!(
            matches!(
                store.existing_repo(bad),
                Err(StoreError::InvalidReference(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn repo_sink_commits_blobs_of_the_stated_size() {
    use sardine_disk::BlobSink as _;
    let (_dir, store) = new_store();
    let repo = store.repo("vm").unwrap();
    let sink = RepoSink::new(&repo).unwrap();
    let temp = sink.temp_dir().join("chunk");
    fs_err::write(&temp, b"chunk").unwrap();
    let digest = Digest::of(b"chunk");
    assert!(!sink.contains(&digest));
    assert!(sink.commit(&temp, &digest, 4).is_err());
    sink.commit(&temp, &digest, 5).unwrap();
    assert!(sink.contains(&digest));
    assert_eq!(repo.verify_blob(&digest).unwrap(), 5);
}

#[test]
fn gc_removes_stale_partial_downloads_only() {
    let (_dir, store) = new_store();
    let temp = store.temp_dir().unwrap();
    let stale = temp.join("aa.partial");
    let fresh = temp.join("bb.partial");
    let foreign = temp.join("notes.txt");
    for path in [&stale, &fresh, &foreign] {
        fs_err::write(path, b"half a blob").unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for path in [&stale, &foreign] {
        fs_err::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert_eq!(gc(&store, true).unwrap().files, 1);
    assert!(stale.exists(), "a dry run removes nothing");
    let report = gc(&store, false).unwrap();
    assert_eq!(
        report,
        GcReport {
            files: 1,
            bytes: 11
        }
    );
    assert!(!stale.exists() && fresh.exists() && foreign.exists());
}

#[test]
fn tagging_records_a_use() {
    let (_dir, store) = new_store();
    let repo = store.repo("a").unwrap();
    let image = put_image(&repo, "used", b"layer");
    assert_eq!(store.last_used(&image.manifest), None);
    tag(&repo, &image, Some("1"));
    assert!(store.last_used(&image.manifest).is_some());
}

#[test]
fn gc_removes_old_records_of_manifests_no_repository_lists() {
    let (_dir, store) = new_store();
    let repo = store.repo("a").unwrap();
    let kept = put_image(&repo, "kept", b"kept layer");
    tag(&repo, &kept, Some("1"));
    let removed = put_image(&repo, "removed", b"removed layer");
    tag(&repo, &removed, Some("2"));
    store.mark_remote(&removed.manifest, "registry.example/a:2");
    let young = Digest::of(b"young");
    store.mark_used(&young);
    assert!(repo.remove_tag("2").unwrap());
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for kind in ["used", "remote"] {
        for entry in fs_err::read_dir(store.root().join(".sardine").join(kind)).unwrap() {
            let path = entry.unwrap().path();
            if !path.ends_with(young.hex()) {
                let file = fs_err::OpenOptions::new().append(true).open(&path).unwrap();
                file.set_modified(old).unwrap();
            }
        }
    }

    gc(&store, false).unwrap();
    assert!(
        store.last_used(&kept.manifest).is_some(),
        "a listed image keeps its record, however old"
    );
    assert_eq!(store.last_used(&removed.manifest), None);
    assert_eq!(store.remote_of(&removed.manifest), None);
    assert!(
        store.last_used(&young).is_some(),
        "a young record may belong to an image being tagged"
    );
}
