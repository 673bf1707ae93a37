//! `fetch` and `pull`: an image from a registry into the local store, and on into libvirt.
//!
//! The transfer itself is [`sardine_oci::transfer::fetch_image`]: blobs in parallel, resumable,
//! each verified, the tag written last. This module makes the registry client from a
//! [`RegistryAccess`], frees space first when auto-pruning is on ([`crate::prune`]), and
//! reports the fetch as one progress phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use sardine_oci::transfer::{self, FetchReport, MakeRoom, TransferOptions};

use crate::error::ImageError;
use crate::import::{ImportOptions, Imported, import};
use crate::progress::RegistryProgress;
use crate::prune::AutoPrune;
use crate::remote::{DEFAULT_REGISTRY, RegistryAccess, client, endpoint_access, pull_endpoints};
use sardine_oci::registries::Endpoint;

/// What to fetch, from where, and how.
pub struct FetchOptions<'a> {
    /// The local store.
    pub store: &'a Store,
    /// The image on the registry (without a registry: [`DEFAULT_REGISTRY`]).
    pub remote: &'a Reference,
    /// Its name in the store.
    pub local: &'a Reference,
    /// How to talk to the registry.
    pub access: &'a RegistryAccess,
    /// The architecture to pick from an image index (Go naming); `None`: the host's.
    pub arch: Option<String>,
    /// When the store's file system lacks the space the image needs plus this many bytes,
    /// prune least recently used images first ([`crate::prune::make_room`]); `None`: never.
    pub auto_prune: Option<u64>,
    /// libvirt URI for auto-pruning's base VMs (`None`: libvirt's default).
    pub connect: Option<&'a str>,
    /// Progress receiver.
    pub progress: Arc<dyn RegistryProgress>,
}

/// What [`pull`] did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The fetch.
    pub fetched: FetchReport,
    /// How long the fetch took.
    pub fetch_time: Duration,
    /// The import.
    pub imported: Imported,
}

/// Copies `remote` from its registry into the store as `local`: from the first of its
/// registries.conf mirrors that has it, else from its (possibly moved) location.
pub async fn fetch(options: &FetchOptions<'_>) -> Result<FetchReport, ImageError> {
    let (mirrors, own) = pull_endpoints(options.remote)?;
    for mirror in &mirrors {
        match fetch_from(options, mirror).await {
            Ok(report) => return Ok(report),
            Err(error) => tracing::warn!(
                "cannot fetch {} from the mirror {}: {error}; trying the next source",
                options.remote,
                mirror.reference
            ),
        }
    }
    fetch_from(options, &own).await
}

/// Fetches from one endpoint of [`fetch`].
async fn fetch_from(
    options: &FetchOptions<'_>,
    endpoint: &Endpoint,
) -> Result<FetchReport, ImageError> {
    let remote = &endpoint.reference;
    if endpoint.mirror {
        tracing::info!("fetching {} from the mirror {remote}", options.remote);
    }
    let registry = remote.registry().unwrap_or(DEFAULT_REGISTRY);
    let client = client(registry, &endpoint_access(options.access, endpoint))?;
    let transfer_options = TransferOptions {
        concurrency: options.access.concurrency,
        arch: options.arch.clone(),
        progress: options.progress.clone(),
        mount_from: Vec::new(),
        make_room: options.auto_prune.map(|keep_free| {
            Arc::new(AutoPrune {
                store: options.store.clone(),
                connect: options.connect.map(str::to_owned),
                keep_free,
            }) as Arc<dyn MakeRoom>
        }),
        ..TransferOptions::default()
    };
    options
        .progress
        .start(&format!("fetch {}", options.remote), 0);
    let report = transfer::fetch_image(
        &client,
        remote,
        options.store,
        options.local,
        &transfer_options,
    )
    .await?;
    options.progress.finish();
    Ok(report)
}

/// Fetches, then imports what was fetched: the import's store and reference are the fetch's
/// store and local name, whatever `import_options` says. The import blocks a worker thread of
/// the multi-threaded tokio runtime that `pull` needs.
pub async fn pull(
    fetch_options: &FetchOptions<'_>,
    import_options: &ImportOptions<'_>,
) -> Result<Pulled, ImageError> {
    let started = Instant::now();
    let fetched = fetch(fetch_options).await?;
    let fetch_time = started.elapsed();
    let import_options = ImportOptions {
        store: fetch_options.store,
        reference: fetch_options.local,
        ..*import_options
    };
    let imported = tokio::task::block_in_place(|| import(&import_options))?;
    Ok(Pulled {
        fetched,
        fetch_time,
        imported,
    })
}
