//! The pull policy of a run: fetch always, when missing, or never; one fetch of an image at a
//! time on a host, however many runs or jobs want it at once.
//!
//! A lock file per repository (`<ocidir>/.sardine/locks/fetch-<repository>.lock`) serialises
//! the fetches: the first downloads, the others wait and then find every blob present (only
//! the manifest is asked for again).

use std::path::PathBuf;
use std::sync::Arc;

use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use sardine_oci::transfer::FetchReport;

use crate::error::ImageError;
use crate::fetch::{FetchOptions, fetch};
use crate::progress::RegistryProgress;
use crate::remote::RegistryAccess;
use crate::store::LocalImage;

/// When to fetch the image of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Every time (a tag may have moved).
    Always,
    /// Only when the store does not have it.
    #[default]
    Missing,
    /// Never: the store must have it.
    Never,
}

/// Makes sure `reference` is in the store as `policy` says; returns the fetch's report when
/// one was made.
pub async fn ensure_image(
    store: &Store,
    reference: &Reference,
    policy: PullPolicy,
    access: &RegistryAccess,
    auto_prune: Option<u64>,
    connect: Option<&str>,
    progress: Arc<dyn RegistryProgress>,
) -> Result<Option<FetchReport>, ImageError> {
    match policy {
        PullPolicy::Never => {
            LocalImage::open(store, reference)?;
            tracing::info!("using {reference} from the local store (pull policy never)");
            return Ok(None);
        }
        PullPolicy::Missing if LocalImage::open(store, reference).is_ok() => {
            tracing::info!("using {reference} from the local store");
            return Ok(None);
        }
        PullPolicy::Missing | PullPolicy::Always => {}
    }
    let lock_path = fetch_lock_path(store, reference);
    let _lock = tokio::task::spawn_blocking(move || sardine_oci::lock::lock_exclusive(&lock_path))
        .await
        .map_err(|e| {
            std::io::Error::other(format!("the task taking the fetch lock died: {e}"))
        })??;
    // Another run may have fetched it while this one waited.
    if policy == PullPolicy::Missing && LocalImage::open(store, reference).is_ok() {
        tracing::info!("using {reference}, fetched meanwhile by another process");
        return Ok(None);
    }
    let report = fetch(&FetchOptions {
        store,
        remote: reference,
        local: reference,
        access,
        arch: None,
        auto_prune,
        connect,
        progress,
    })
    .await?;
    Ok(Some(report))
}

/// The lock file for fetching `reference`: its repository, escaped to one safe file name.
pub fn fetch_lock_path(store: &Store, reference: &Reference) -> PathBuf {
    let mut name = String::from("fetch-");
    for byte in reference.name().bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => name.push(char::from(byte)),
            other => name.push_str(&format!("_{other:02x}")),
        }
    }
    name.push_str(".lock");
    store.root().join(".sardine").join("locks").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_single_safe_file_names_per_repository() {
        let store = Store::new("/o");
        let reference = Reference::parse("localhost:5000/team/vm_x:1").unwrap();
        let path = fetch_lock_path(&store, &reference);
        assert_eq!(
            path,
            PathBuf::from("/o/.sardine/locks/fetch-localhost_3a5000_2fteam_2fvm_5fx.lock")
        );
        let other = Reference::parse("localhost:5000/team/vm_x:2").unwrap();
        assert_eq!(fetch_lock_path(&store, &other), path, "whatever the tag");
    }
}
