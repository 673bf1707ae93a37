//! Copying images between a registry and the local store, blobs in parallel.
//!
//! Fetch: manifest (from an index, the entry for the wanted architecture), then config and
//! layers into resumable partial files `<store temp>/<hex>.partial` (stable names, so a re-run
//! continues where the last one stopped), each verified before it is committed; the tag is
//! written last, so no tag ever points at an incomplete image. Push: blobs the registry has are
//! skipped, others are mounted from a known repository or uploaded; the manifest goes last.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::{StreamExt as _, TryStreamExt as _};
use tracing::debug;

use crate::Digest;
use crate::layout::{Repo, Store, StoreError};
use crate::lock::{self, LockGuard};
use crate::manifest::{BlobRef, Descriptor, Index, Manifest};
use crate::media_types;
use crate::reference::Reference;
use crate::registry::{FetchedManifest, RegistryClient, RegistryError};

/// Receives progress of a transfer (implemented by the command line's progress bars).
pub trait TransferProgress: Send + Sync {
    /// A blob of `size` bytes is about to be transferred (or checked).
    fn start_blob(&self, digest: &Digest, size: u64);
    /// `bytes` more bytes were transferred (summed over all blobs).
    fn advance(&self, bytes: u64);
    /// A blob is done; `skipped` when nothing had to be transferred.
    fn finish_blob(&self, digest: &Digest, skipped: bool);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl TransferProgress for NoProgress {
    fn start_blob(&self, _digest: &Digest, _size: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish_blob(&self, _digest: &Digest, _skipped: bool) {}
}

/// How a transfer runs.
#[derive(Clone)]
pub struct TransferOptions {
    /// How many blobs are transferred at the same time.
    pub concurrency: usize,
    /// The architecture to pick from an image index, in Go naming (`amd64`, `arm64`);
    /// `None` is the host's.
    pub arch: Option<String>,
    /// Where progress goes.
    pub progress: Arc<dyn TransferProgress>,
    /// Repositories on the target registry that may already hold the blobs (tried as
    /// cross-repository mounts before uploading).
    pub mount_from: Vec<String>,
    /// Called by a fetch once the manifest is known, before anything is locked or downloaded:
    /// the place to free space for the blobs the store lacks.
    pub make_room: Option<Arc<dyn MakeRoom>>,
}

/// Frees space in the store before a fetch ([`TransferOptions::make_room`]).
pub trait MakeRoom: Send + Sync {
    /// Makes room for `needed` more bytes in the store, never removing the image whose manifest
    /// is `keep` (the one being fetched). Failures are the implementation's to report: the fetch
    /// goes on either way and fails cleanly if the space really runs out.
    fn make_room(&self, needed: u64, keep: &Digest);
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            concurrency: 8,
            arch: None,
            progress: Arc::new(NoProgress),
            mount_from: Vec::new(),
            make_room: None,
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("concurrency", &self.concurrency)
            .field("arch", &self.arch)
            .field("mount_from", &self.mount_from)
            .finish_non_exhaustive()
    }
}

/// What [`fetch_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The digest of the fetched (platform) manifest.
    pub manifest_digest: Digest,
    /// Blobs downloaded.
    pub downloaded: usize,
    /// Blobs the local repository had already.
    pub skipped: usize,
    /// Bytes of the downloaded blobs.
    pub bytes: u64,
}

/// What [`push_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The digest of the pushed manifest.
    pub manifest_digest: Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry had already.
    pub skipped: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Bytes of the uploaded blobs.
    pub bytes: u64,
}

/// Why a fetch or push failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Talking to the registry failed.
    #[error("transferring {image} failed")]
    Registry {
        /// The image, as the user named it.
        image: String,
        /// The registry client's error.
        #[source]
        source: RegistryError,
    },
    /// The local store failed.
    #[error("transferring {image} failed in the local image store")]
    Store {
        /// The image, as the user named it.
        image: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The reference names a different registry than the client talks to.
    #[error("{image} is not on registry {registry}")]
    WrongRegistry {
        /// The image, as the user named it.
        image: String,
        /// The registry the client talks to.
        registry: String,
    },
    /// An image index has no manifest for the wanted architecture.
    #[error("{image} has no image for architecture {arch} (it has: {available})")]
    NoPlatform {
        /// The image, as the user named it.
        image: String,
        /// The wanted architecture.
        arch: String,
        /// The architectures the index has, comma-separated.
        available: String,
    },
    /// The registry served something that is not an image manifest.
    #[error("{image} is not a VM image: its manifest has media type {media_type:?}")]
    NotAnImage {
        /// The image, as the user named it.
        image: String,
        /// The media type of what was served.
        media_type: String,
    },
    /// A manifest or index cannot be parsed.
    #[error("the manifest of {image} is not valid")]
    BadManifest {
        /// The image, as the user named it.
        image: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The pushed manifest does not have the digest the target reference demands.
    #[error("cannot push {image}: the local manifest has digest {actual}")]
    DigestConflict {
        /// The image, as the user named it.
        image: String,
        /// The local manifest's digest.
        actual: Digest,
    },
    /// A blocking helper task died.
    #[error("an internal task failed while transferring {image}")]
    Task {
        /// The image, as the user named it.
        image: String,
        /// Why the task died.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl TransferError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            TransferError::Registry {
                source: RegistryError::NotFound { .. },
                ..
            } => Some("check the repository and tag; private images need credentials"),
            TransferError::Registry { source, .. } => source.hint(),
            TransferError::Store { source, .. } => source.hint(),
            TransferError::NoPlatform { .. } => Some("choose another architecture"),
            _ => None,
        }
    }
}

/// The host's architecture in Go naming, as image indexes use it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Downloads `remote` from the registry into the local store as `local`; returns what was done.
///
/// Blobs the local repository has already are not downloaded. The repository stays locked
/// until the tag is written, so a concurrent garbage collection cannot remove new blobs.
pub async fn fetch_image(
    client: &RegistryClient,
    remote: &Reference,
    store: &Store,
    local: &Reference,
    opts: &TransferOptions,
) -> Result<FetchReport, TransferError> {
    let image = remote.to_string();
    let ctx = Ctx { image: &image };
    let repo_name = remote_repository(client, remote, &ctx)?;
    let reference = remote.digest().or(remote.tag()).unwrap_or("latest");
    let mut fetched = ctx.registry(client.get_manifest(&repo_name, reference).await)?;
    if media_types::is_index(&fetched.media_type) {
        let arch = opts.arch.as_deref().unwrap_or(host_arch());
        let chosen = pick_platform(&fetched.body, arch, &ctx)?;
        debug!(%image, arch, digest = %chosen, "picked the platform manifest from the index");
        fetched = ctx.registry(client.get_manifest(&repo_name, &chosen).await)?;
    }
    let FetchedManifest {
        body, media_type, ..
    } = fetched;
    if !media_types::is_manifest(&media_type) {
        return Err(TransferError::NotAnImage { image, media_type });
    }
    let manifest: Manifest =
        serde_json::from_slice(&body).map_err(|source| TransferError::BadManifest {
            image: image.clone(),
            source,
        })?;

    let repo = ctx.store(store.repo(local.name()))?;
    let blobs = ctx.store(unique_blobs(&manifest))?;
    if let Some(make_room) = opts.make_room.clone() {
        let needed = missing_bytes(&repo, &blobs);
        let keep = Digest::of(&body);
        ctx.blocking(move || {
            make_room.make_room(needed, &keep);
            Ok(())
        })
        .await?;
    }
    ctx.store(repo.init())?;
    let _repo_lock = ctx
        .blocking({
            let repo = repo.clone();
            move || repo.lock()
        })
        .await?;
    let temp_dir = ctx.store(store.temp_dir())?;

    let results: Vec<Option<u64>> = futures_util::stream::iter(blobs)
        .map(|desc| fetch_blob(client, &repo_name, &repo, &temp_dir, desc, opts, &ctx))
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect()
        .await?;

    // The store hashes the bytes itself; they are the bytes the registry client hashed into `digest`.
    let (digest, size) = ctx.store(repo.put_blob_bytes(&body))?;
    ctx.store(repo.set_tag(&digest, size, &media_type, local.tag()))?;
    store.mark_remote(&digest, &image);
    let downloaded: Vec<u64> = results.iter().flatten().copied().collect();
    let report = FetchReport {
        manifest_digest: digest,
        downloaded: downloaded.len(),
        skipped: results.len() - downloaded.len(),
        bytes: downloaded.iter().sum(),
    };
    debug!(%image, local = %local, ?report, "fetched");
    Ok(report)
}

/// Fetches one blob unless the repository has it; returns the bytes downloaded, or `None` if skipped.
async fn fetch_blob(
    client: &RegistryClient,
    repo_name: &str,
    repo: &Repo,
    temp_dir: &std::path::Path,
    blob: BlobRef,
    opts: &TransferOptions,
    ctx: &Ctx<'_>,
) -> Result<Option<u64>, TransferError> {
    let progress = &opts.progress;
    progress.start_blob(&blob.digest, blob.size);
    if ctx.store(repo.link_pooled_blob(&blob.digest, blob.size))? {
        progress.finish_blob(&blob.digest, true);
        return Ok(None);
    }
    let hex = blob.digest.hex();
    let partial = temp_dir.join(format!("{hex}.partial"));
    // Another process fetching the same blob into this store uses the same partial file. The
    // lock files are never deleted (that would race), so they are shared by blobs with the same
    // first two hex digits: 256 files at most. Blobs of this process that share a stripe wait
    // for each other in memory first, so the file lock only ever waits for other processes.
    let stripe_hex = hex.get(..2).unwrap_or("00");
    let _in_process = process_stripe(stripe_hex).lock().await;
    let stripe = temp_dir.join(format!("fetch-{stripe_hex}.lock"));
    let _blob_lock = lock_partial(stripe, ctx).await?;
    if ctx.store(repo.link_pooled_blob(&blob.digest, blob.size))? {
        progress.finish_blob(&blob.digest, true);
        return Ok(None);
    }
    let advance = Advance::new(progress.as_ref());
    ctx.registry(
        client
            .fetch_blob(repo_name, &blob.digest, blob.size, &partial, &|n| {
                advance.to(n)
            })
            .await,
    )?;
    ctx.store(repo.commit_blob(&partial, &blob.digest))?;
    progress.finish_blob(&blob.digest, false);
    Ok(Some(blob.size))
}

/// The in-process lock of the fetch stripe `stripe_hex` (two hex digits).
fn process_stripe(stripe_hex: &str) -> &'static tokio::sync::Mutex<()> {
    static STRIPES: OnceLock<Vec<tokio::sync::Mutex<()>>> = OnceLock::new();
    let stripes = STRIPES.get_or_init(|| (0..256).map(|_| tokio::sync::Mutex::new(())).collect());
    &stripes[usize::from(u8::from_str_radix(stripe_hex, 16).unwrap_or(0))]
}

async fn lock_partial(path: PathBuf, ctx: &Ctx<'_>) -> Result<LockGuard, TransferError> {
    ctx.blocking(move || {
        lock::lock_exclusive(&path).map_err(|source| StoreError::Lock { path, source })
    })
    .await
}

/// Uploads the local image `local` to the registry as `remote`; returns what was done.
///
/// Blobs the registry has are skipped; others are mounted from [`TransferOptions::mount_from`]
/// when possible, else uploaded. The manifest is put under `remote`'s tag (else `local`'s tag,
/// else `latest`), or under its digest when `remote` names one.
pub async fn push_image(
    client: &RegistryClient,
    store: &Store,
    local: &Reference,
    remote: &Reference,
    opts: &TransferOptions,
) -> Result<PushReport, TransferError> {
    let image = remote.to_string();
    let ctx = Ctx { image: &image };
    let repo_name = remote_repository(client, remote, &ctx)?;
    let repo = ctx.store(store.existing_repo(local.name()))?;
    let desc = ctx.store(repo.resolve(local.tag(), local.digest()))?;
    let (body, manifest) = ctx.store(repo.read_manifest_bytes(&desc))?;
    let local_digest = ctx.store(desc.valid_digest().map_err(StoreError::from))?;
    if let Some(wanted) = remote.digest()
        && wanted != local_digest.as_str()
    {
        return Err(TransferError::DigestConflict {
            image,
            actual: local_digest,
        });
    }

    let blobs = ctx.store(unique_blobs(&manifest))?;
    let outcomes: Vec<PushOutcome> = futures_util::stream::iter(blobs)
        .map(|blob| push_blob(client, &repo_name, &repo, blob, opts, &ctx))
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect()
        .await?;

    let media_type = [desc.media_type.as_deref(), manifest.media_type.as_deref()]
        .into_iter()
        .flatten()
        .find(|t| media_types::is_manifest(t))
        .unwrap_or(media_types::OCI_MANIFEST);
    let reference = remote
        .digest()
        .or(remote.tag())
        .or(local.tag())
        .unwrap_or("latest");
    let digest = ctx.registry(
        client
            .put_manifest(&repo_name, reference, &body, media_type)
            .await,
    )?;
    store.mark_remote(&local_digest, &image);
    let mut report = PushReport {
        manifest_digest: digest,
        uploaded: 0,
        skipped: 0,
        mounted: 0,
        bytes: 0,
    };
    for outcome in outcomes {
        match outcome {
            PushOutcome::Skipped => report.skipped += 1,
            PushOutcome::Mounted => report.mounted += 1,
            PushOutcome::Uploaded(bytes) => {
                report.uploaded += 1;
                report.bytes += bytes;
            }
        }
    }
    debug!(%image, local = %local, ?report, "pushed");
    Ok(report)
}

enum PushOutcome {
    Skipped,
    Mounted,
    Uploaded(u64),
}

async fn push_blob(
    client: &RegistryClient,
    repo_name: &str,
    repo: &Repo,
    blob: BlobRef,
    opts: &TransferOptions,
    ctx: &Ctx<'_>,
) -> Result<PushOutcome, TransferError> {
    let progress = &opts.progress;
    progress.start_blob(&blob.digest, blob.size);
    if ctx
        .registry(client.blob_exists(repo_name, &blob.digest).await)?
        .is_some()
    {
        progress.finish_blob(&blob.digest, true);
        return Ok(PushOutcome::Skipped);
    }
    for source in opts.mount_from.iter().filter(|s| s.as_str() != repo_name) {
        if ctx.registry(client.mount_blob(repo_name, &blob.digest, source).await)? {
            progress.finish_blob(&blob.digest, true);
            return Ok(PushOutcome::Mounted);
        }
    }
    let path = repo.blob_path(&blob.digest);
    if !path.is_file() {
        let missing = StoreError::BlobMissing {
            repo: repo.name().to_owned(),
            digest: blob.digest.clone(),
        };
        return Err(TransferError::Store {
            image: ctx.image.to_owned(),
            source: missing,
        });
    }
    let advance = Advance::new(progress.as_ref());
    ctx.registry(
        client
            .push_blob_file(repo_name, &blob.digest, blob.size, &path, &|n| {
                advance.to(n)
            })
            .await,
    )?;
    progress.finish_blob(&blob.digest, false);
    Ok(PushOutcome::Uploaded(blob.size))
}

/// Bytes of `blobs` that neither `repo` nor the store's pool holds.
fn missing_bytes(repo: &Repo, blobs: &[BlobRef]) -> u64 {
    blobs
        .iter()
        .filter(|b| !repo.has_blob(&b.digest) && !repo.has_pooled_blob(&b.digest, b.size))
        .map(|b| b.size)
        .sum()
}

/// Config and layers, each digest once; an invalid digest anywhere refuses the manifest.
fn unique_blobs(manifest: &Manifest) -> Result<Vec<BlobRef>, StoreError> {
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let blob = desc.blob_ref()?;
        if seen.insert(blob.digest.clone()) {
            blobs.push(blob);
        }
    }
    Ok(blobs)
}

/// The digest of the index entry for `arch` (any OS; entries without a platform are skipped).
fn pick_platform(body: &[u8], arch: &str, ctx: &Ctx<'_>) -> Result<String, TransferError> {
    let index: Index =
        serde_json::from_slice(body).map_err(|source| TransferError::BadManifest {
            image: ctx.image.to_owned(),
            source,
        })?;
    let arch_of = |d: &Descriptor| {
        d.platform
            .as_ref()?
            .get("architecture")?
            .as_str()
            .map(str::to_owned)
    };
    if let Some(found) = index
        .manifests
        .iter()
        .find(|d| arch_of(d).as_deref() == Some(arch))
    {
        return Ok(found.digest.clone());
    }
    let available: Vec<String> = index.manifests.iter().filter_map(arch_of).collect();
    Err(TransferError::NoPlatform {
        image: ctx.image.to_owned(),
        arch: arch.to_owned(),
        available: if available.is_empty() {
            "none".to_owned()
        } else {
            available.join(", ")
        },
    })
}

/// The repository path on the registry; checks that `remote` belongs to the client's registry.
fn remote_repository(
    client: &RegistryClient,
    remote: &Reference,
    ctx: &Ctx<'_>,
) -> Result<String, TransferError> {
    let registry = remote.registry().unwrap_or("docker.io");
    let same = registry == client.registry()
        || (is_docker_hub(registry) && is_docker_hub(client.registry()));
    if !same {
        return Err(TransferError::WrongRegistry {
            image: ctx.image.to_owned(),
            registry: client.registry().to_owned(),
        });
    }
    let repository = remote.repository();
    Ok(if is_docker_hub(registry) && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_owned()
    })
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Turns the registry client's "bytes of this blob so far" into [`TransferProgress::advance`] steps.
struct Advance<'a> {
    progress: &'a dyn TransferProgress,
    last: AtomicU64,
}

impl<'a> Advance<'a> {
    fn new(progress: &'a dyn TransferProgress) -> Self {
        Advance {
            progress,
            last: AtomicU64::new(0),
        }
    }

    /// Records that `done` bytes are done; a restart (smaller value) is not counted again.
    fn to(&self, done: u64) {
        let last = self.last.fetch_max(done, Ordering::Relaxed);
        if done > last {
            self.progress.advance(done - last);
        }
    }
}

/// The image being transferred, for error messages.
struct Ctx<'a> {
    image: &'a str,
}

impl Ctx<'_> {
    fn registry<T>(&self, result: Result<T, RegistryError>) -> Result<T, TransferError> {
        result.map_err(|source| TransferError::Registry {
            image: self.image.to_owned(),
            source,
        })
    }

    fn store<T>(&self, result: Result<T, StoreError>) -> Result<T, TransferError> {
        result.map_err(|source| TransferError::Store {
            image: self.image.to_owned(),
            source,
        })
    }

    /// Runs blocking work (waiting for file locks) off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, TransferError> {
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => self.store(result),
            Err(source) => Err(TransferError::Task {
                image: self.image.to_owned(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<u64>>);

    impl TransferProgress for Recorder {
        fn start_blob(&self, _: &Digest, _: u64) {}
        fn advance(&self, bytes: u64) {
            self.0.lock().unwrap().push(bytes);
        }
        fn finish_blob(&self, _: &Digest, _: bool) {}
    }

    #[test]
    fn advance_counts_each_byte_once() {
        let recorder = Recorder::default();
        let advance = Advance::new(&recorder);
        for n in [0, 10, 25, 5, 25, 40] {
            advance.to(n);
        }
        assert_eq!(*recorder.0.lock().unwrap(), vec![10, 15, 15]);
    }

    #[test]
    fn picks_the_platform_by_architecture() {
        let ctx = Ctx { image: "x" };
        let index = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"architecture":"arm64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        assert_eq!(pick_platform(index, "amd64", &ctx).unwrap(), "sha256:bb");
        let err = pick_platform(index, "riscv64", &ctx).unwrap_err();
        assert!(err.to_string().contains("arm64, amd64"), "{err}");
    }

    #[test]
    fn blobs_are_listed_once() {
        let (c, l) = (Digest::of(b"c"), Digest::of(b"l"));
        let config = Descriptor::new(media_types::OCI_CONFIG, &c, 1);
        let layer = Descriptor::new("x", &l, 2);
        let manifest = Manifest::new(config, vec![layer.clone(), layer]);
        let digests: Vec<Digest> = unique_blobs(&manifest)
            .unwrap()
            .into_iter()
            .map(|b| b.digest)
            .collect();
        assert_eq!(digests, [c, l]);
    }

    #[test]
    fn a_manifest_with_an_invalid_digest_is_refused_whole() {
        let config = Descriptor::new(media_types::OCI_CONFIG, &Digest::of(b"c"), 1);
        let layer = Descriptor::new("x", "sha256:../../etc/passwd", 2);
        let manifest = Manifest::new(config, vec![layer]);
        assert!(matches!(
            unique_blobs(&manifest),
            Err(StoreError::InvalidDigest(_))
        ));
    }

    #[test]
    fn docker_hub_names_get_library() {
        let client = RegistryClient::new("docker.io", Default::default()).unwrap();
        let ctx = Ctx { image: "x" };
        let remote = Reference::parse("debian:12").unwrap();
        assert_eq!(
            remote_repository(&client, &remote, &ctx).unwrap(),
            "library/debian"
        );
        let other = Reference::parse("127.0.0.1:5000/vm:1").unwrap();
        assert!(matches!(
            remote_repository(&client, &other, &ctx),
            Err(TransferError::WrongRegistry { .. })
        ));
    }

    #[test]
    fn host_arch_uses_go_names() {
        assert!(!host_arch().contains('_'), "{}", host_arch());
    }
}
