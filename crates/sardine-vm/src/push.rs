//! `push`: a local image to one registry or more.
//!
//! The transfer itself is [`sardine_oci::transfer::push_image`]: blobs the registry has are
//! skipped, others mounted from another repository of that registry or uploaded, the manifest
//! last. This module keeps one client per registry across the targets of a [`Push`] and picks
//! the repositories to mount from: the image's own, the targets pushed before, and other local
//! images of that registry that share blobs with it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sardine_oci::Digest;
use sardine_oci::layout::{Repo, Store};
use sardine_oci::reference::Reference;
use sardine_oci::registry::RegistryClient;
use sardine_oci::transfer::{self, PushReport, TransferOptions};

use crate::error::ImageError;
use crate::progress::RegistryProgress;
use crate::remote::{DEFAULT_REGISTRY, RegistryAccess, client, endpoint_access, push_endpoint};
use crate::store::image_blobs;

/// At most this many repositories are tried as mount sources for each blob of a push.
const MAX_MOUNT_SOURCES: usize = 4;

/// What to push, and how.
pub struct PushOptions<'a> {
    /// The local store.
    pub store: &'a Store,
    /// The image in the store.
    pub local: &'a Reference,
    /// How to talk to the registries.
    pub access: &'a RegistryAccess,
    /// Progress receiver.
    pub progress: Arc<dyn RegistryProgress>,
}

/// Pushes one image to targets one after the other, reusing clients and mount sources.
pub struct Push<'a> {
    options: PushOptions<'a>,
    clients: HashMap<String, RegistryClient>,
    pushed: Vec<Reference>,
}

impl<'a> Push<'a> {
    /// A push of `options.local`, to no target yet.
    pub fn new(options: PushOptions<'a>) -> Self {
        Push {
            options,
            clients: HashMap::new(),
            pushed: Vec::new(),
        }
    }

    /// Copies the image to `target` (without a registry: [`DEFAULT_REGISTRY`]; moved where
    /// registries.conf says).
    pub async fn to(&mut self, target: &Reference) -> Result<PushReport, ImageError> {
        let endpoint = push_endpoint(target)?;
        let target = &endpoint.reference;
        let access = endpoint_access(self.options.access, &endpoint);
        let client = self.client(target.registry().unwrap_or(DEFAULT_REGISTRY), &access)?;
        let options = &self.options;
        let transfer_options = TransferOptions {
            concurrency: options.access.concurrency,
            arch: None,
            progress: options.progress.clone(),
            mount_from: mount_sources(options.store, options.local, target, &self.pushed),
            ..TransferOptions::default()
        };
        tracing::debug!(%target, mount_from = ?transfer_options.mount_from, "pushing");
        options.progress.start(&format!("push {target}"), 0);
        let report = transfer::push_image(
            &client,
            options.store,
            options.local,
            target,
            &transfer_options,
        )
        .await?;
        options.progress.finish();
        self.pushed.push(target.clone());
        Ok(report)
    }

    /// The client for `registry`, made once.
    fn client(
        &mut self,
        registry: &str,
        access: &RegistryAccess,
    ) -> Result<RegistryClient, ImageError> {
        if let Some(client) = self.clients.get(registry) {
            return Ok(client.clone());
        }
        let client = client(registry, access)?;
        self.clients.insert(registry.to_owned(), client.clone());
        Ok(client)
    }
}
/// Repositories on the target's registry that may hold the blobs already, to mount from
/// instead of uploading: the local image's own repository, targets pushed before in this run,
/// and other local images from that registry that share blobs with this one.
fn mount_sources(
    store: &Store,
    local: &Reference,
    target: &Reference,
    pushed: &[Reference],
) -> Vec<String> {
    let same_registry = |r: &Reference| r.registry().is_some() && r.registry() == target.registry();
    let mut sources: Vec<String> = std::iter::once(local)
        .chain(pushed)
        .filter(|r| same_registry(r))
        .map(|r| r.repository().to_owned())
        .collect();
    sources.extend(sharing_repositories(store, local, target));
    let mut seen = HashSet::new();
    sources.retain(|s| s != target.repository() && seen.insert(s.clone()));
    sources.truncate(MAX_MOUNT_SOURCES);
    sources
}

/// Local repositories from `target`'s registry with blobs in common with `local`, most shared
/// first (best effort: unreadable repositories are left out).
fn sharing_repositories(store: &Store, local: &Reference, target: &Reference) -> Vec<String> {
    let Some(wanted) = image_blobs(store, local.name(), local.tag(), local.digest()) else {
        return Vec::new();
    };
    let Ok(repos) = store.repos() else {
        return Vec::new();
    };
    let mut shared: Vec<(usize, String)> = repos
        .iter()
        .filter(|repo| repo.name() != local.name())
        .filter_map(|repo| {
            let name = Reference::parse(repo.name()).ok()?;
            if name.registry() != target.registry() {
                return None;
            }
            let common = repo_blobs(repo)
                .iter()
                .filter(|blob| wanted.contains_key(*blob))
                .count();
            (common > 0).then(|| (common, name.repository().to_owned()))
        })
        .collect();
    shared.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    shared.into_iter().map(|(_, name)| name).collect()
}

/// The blobs of every image manifest of a local repository.
fn repo_blobs(repo: &Repo) -> HashSet<Digest> {
    let Ok(index) = repo.index() else {
        return HashSet::new();
    };
    index
        .manifests
        .iter()
        .filter_map(|desc| repo.read_manifest(desc).ok())
        .flat_map(|m| std::iter::once(m.config).chain(m.layers))
        .filter_map(|d| d.valid_digest().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_sources_are_on_the_target_registry() -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::new(tempfile::tempdir()?.path().join("empty"));
        let local = Reference::parse("r.example/vms/a:1")?;
        let same = Reference::parse("r.example/vms/b:1")?;
        let other = Reference::parse("o.example/vms/a:1")?;
        assert_eq!(mount_sources(&store, &local, &same, &[]), ["vms/a"]);
        assert!(mount_sources(&store, &local, &local, &[]).is_empty());
        assert!(mount_sources(&store, &local, &other, std::slice::from_ref(&same)).is_empty());
        let third = Reference::parse("r.example/vms/c:1")?;
        assert_eq!(
            mount_sources(&store, &local, &third, &[same.clone(), other]),
            ["vms/a", "vms/b"]
        );
        Ok(())
    }
}
