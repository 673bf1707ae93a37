//! Pushing images from a local store to a real `docker-registry` and fetching them back.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use common::{client, start_registry};
use sardine_oci::Digest;
use sardine_oci::layout::Store;
use sardine_oci::manifest::{Descriptor, Manifest};
use sardine_oci::media_types;
use sardine_oci::reference::Reference;
use sardine_oci::registry::RegistryClient;
use sardine_oci::transfer::{
    self, FetchReport, PushReport, TransferError, TransferOptions, TransferProgress,
};
use sardine_testbed::random_bytes;

/// Counts what the transfer reports.
#[derive(Default)]
struct Counter {
    started: AtomicUsize,
    skipped: AtomicUsize,
    bytes: AtomicU64,
}

impl TransferProgress for Counter {
    fn start_blob(&self, _digest: &Digest, _size: u64) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn advance(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }
    fn finish_blob(&self, _digest: &Digest, skipped: bool) {
        if skipped {
            self.skipped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Creates `name:tag` in `store` with a config and two layers; returns the manifest digest and
/// the layer contents.
fn make_image(store: &Store, name: &str, tag: &str) -> (Digest, Vec<Vec<u8>>) {
    let repo = store.repo(name).unwrap();
    repo.init().unwrap();
    let (config_digest, config_size) = repo
        .put_blob_bytes(br#"{"architecture":"amd64","os":"linux"}"#)
        .unwrap();
    let layers = vec![random_bytes(3 * 1024 * 1024 + 5), random_bytes(1000)];
    let descriptors = layers
        .iter()
        .map(|data| {
            let (digest, size) = repo.put_blob_bytes(data).unwrap();
            Descriptor::new("application/octet-stream", &digest, size)
        })
        .collect();
    let manifest = Manifest::new(
        Descriptor::new(media_types::OCI_CONFIG, &config_digest, config_size),
        descriptors,
    );
    let (digest, size) = repo.put_blob_bytes(&manifest.to_json()).unwrap();
    repo.set_tag(&digest, size, media_types::OCI_MANIFEST, Some(tag))
        .unwrap();
    (digest, layers)
}

/// A store in a new temporary directory (kept as long as the store is used).
fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    (dir, store)
}

/// A store in a new temporary directory holding the image `local/vm:v1` (see [`make_image`]).
fn source_store() -> (tempfile::TempDir, Store, Digest, Vec<Vec<u8>>) {
    let (dir, store) = temp_store();
    let (manifest_digest, layers) = make_image(&store, "local/vm", "v1");
    (dir, store, manifest_digest, layers)
}

/// Pushes `local/vm:v1` of `source` to `remote`.
async fn push(
    client: &RegistryClient,
    source: &Store,
    remote: &Reference,
    options: &TransferOptions,
) -> Result<PushReport, TransferError> {
    transfer::push_image(client, source, &reference("local/vm:v1"), remote, options).await
}

fn options(progress: Arc<Counter>) -> TransferOptions {
    TransferOptions {
        progress,
        ..TransferOptions::default()
    }
}

/// Fetches `remote` into `target` as `local`; returns the report and what progress counted.
async fn fetch_counted(
    client: &RegistryClient,
    remote: &Reference,
    target: &Store,
    local: &Reference,
) -> (FetchReport, Arc<Counter>) {
    let progress = Arc::new(Counter::default());
    let report = transfer::fetch_image(client, remote, target, local, &options(progress.clone()))
        .await
        .unwrap();
    (report, progress)
}

#[tokio::test]
async fn push_then_fetch_into_an_empty_store() {
    let registry = start_registry();
    let client = client(&registry, None, Some(1024 * 1024));
    let (_source_dir, source, manifest_digest, layers) = source_store();
    let remote = reference(&format!("{}/test/vm:v1", registry.host()));

    let progress = Arc::new(Counter::default());
    let report = push(&client, &source, &remote, &options(progress.clone()))
        .await
        .unwrap();
    assert_eq!(
        (report.uploaded, report.skipped, report.mounted),
        (3, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.manifest_digest, manifest_digest);
    assert_eq!(progress.bytes.load(Ordering::SeqCst), report.bytes);
    assert_eq!(progress.started.load(Ordering::SeqCst), 3);

    let (_target_dir, target) = temp_store();
    let local = reference(&format!("{}/test/vm:v1", registry.host()));
    let (fetched, progress) = fetch_counted(&client, &remote, &target, &local).await;
    assert_eq!(fetched.manifest_digest, manifest_digest);
    assert_eq!((fetched.downloaded, fetched.skipped), (3, 0));
    assert_eq!(progress.bytes.load(Ordering::SeqCst), fetched.bytes);

    let repo = target.repo(local.name()).unwrap();
    let desc = repo.resolve(Some("v1"), None).unwrap();
    assert_eq!(desc.digest, manifest_digest);
    let manifest = repo.read_manifest(&desc).unwrap();
    for (layer, data) in manifest.layers.iter().zip(&layers) {
        assert!(
            repo.read_blob(&layer.valid_digest().unwrap(), 16 << 20)
                .unwrap()
                == *data
        );
    }
    let partials: Vec<_> = fs_err::read_dir(target.temp_dir().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(
        partials.is_empty(),
        "committed partials are gone: {partials:?}"
    );

    // Nothing is transferred a second time.
    let again = push(&client, &source, &remote, &TransferOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (again.uploaded, again.skipped, again.bytes),
        (0, 3, 0),
        "{again:?}"
    );
    let (again, progress) = fetch_counted(&client, &remote, &target, &local).await;
    assert_eq!((again.downloaded, again.skipped), (0, 3));
    assert_eq!(progress.skipped.load(Ordering::SeqCst), 3);

    // Another repository of the same registry gets the blobs by mounting.
    let other = reference(&format!("{}/test/copy:v1", registry.host()));
    let opts = TransferOptions {
        mount_from: vec!["test/vm".into()],
        ..TransferOptions::default()
    };
    let mounted = push(&client, &source, &other, &opts).await.unwrap();
    assert_eq!((mounted.uploaded, mounted.mounted), (0, 3), "{mounted:?}");
}

#[tokio::test]
async fn fetch_picks_the_architecture_from_an_index() {
    let registry = start_registry();
    let client = client(&registry, None, None);
    let (_source_dir, source, manifest_digest, _) = source_store();
    let remote = reference(&format!("{}/multi/vm:v1", registry.host()));
    let pushed = push(&client, &source, &remote, &TransferOptions::default())
        .await
        .unwrap();
    let size = fs_err::metadata(source.repo("local/vm").unwrap().blob_path(&manifest_digest))
        .unwrap()
        .len();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{size},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        media_types::OCI_INDEX,
        media_types::OCI_MANIFEST,
        pushed.manifest_digest
    );
    client
        .put_manifest(
            "multi/vm",
            "multi",
            index.as_bytes(),
            media_types::OCI_INDEX,
        )
        .await
        .unwrap();

    let (_target_dir, target) = temp_store();
    let remote = reference(&format!("{}/multi/vm:multi", registry.host()));
    let local = reference("fetched/vm:multi");
    let arm = TransferOptions {
        arch: Some("arm64".into()),
        ..TransferOptions::default()
    };
    let report = transfer::fetch_image(&client, &remote, &target, &local, &arm)
        .await
        .unwrap();
    assert_eq!(report.manifest_digest, manifest_digest);

    let s390 = TransferOptions {
        arch: Some("s390x".into()),
        ..TransferOptions::default()
    };
    let err = transfer::fetch_image(&client, &remote, &target, &local, &s390)
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::NoPlatform { .. }), "{err:?}");
}

#[tokio::test]
async fn failed_fetch_writes_no_tag() {
    let registry = start_registry();
    let client = client(&registry, None, None);
    let (_source_dir, source, _, _) = source_store();
    let remote = reference(&format!("{}/broken/vm:v1", registry.host()));
    push(&client, &source, &remote, &TransferOptions::default())
        .await
        .unwrap();

    // Delete the big layer on the registry.
    let repo = source.repo("local/vm").unwrap();
    let layer = repo
        .read_manifest(&repo.resolve(Some("v1"), None).unwrap())
        .unwrap()
        .layers[0]
        .digest
        .clone();
    let url = format!("http://{}/v2/broken/vm/blobs/{layer}", registry.host());
    let status = reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);

    let (_target_dir, target) = temp_store();
    let local = reference("fetched/vm:v1");
    let err = transfer::fetch_image(
        &client,
        &remote,
        &target,
        &local,
        &TransferOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, TransferError::Registry { source, .. } if matches!(source, sardine_oci::registry::RegistryError::NotFound { .. })),
        "{err:?}"
    );
    let repo = target.repo("fetched/vm").unwrap();
    assert!(
        repo.resolve(Some("v1"), None).is_err(),
        "no tag points at the incomplete image"
    );
}
