//! `sarde prune`: frees space by removing what nothing needs any more.
//!
//! In this order:
//! 1. garbage of the store ([`sardine_oci::layout::gc`]): blobs no image references, pool
//!    files no repository links to, temp files and partial downloads of dead processes;
//! 2. with `older_than` and/or `space_budget`: images (every tag of a manifest at once), least
//!    recently used first. `older_than` makes only images unused for that long candidates;
//!    `space_budget` stops as soon as the store fits in it (without it, every candidate
//!    goes). An image whose imported base VM still serves a clone (defined or running,
//!    directly or through other clones) is never a candidate;
//! 3. with either option: imported base VMs (named after their image ID by `import`) that are
//!    shut off, serve no clone, and whose image is no longer in the store;
//! 4. leftovers of interrupted imports and removals (`<vmdir>/.<name>.importing/`,
//!    `<vmdir>/.<name>.removing/`, untouched for an hour
//!    and not locked by a running import) next to the directories of known VMs.
//!
//! [`make_room`] is the automatic variant that fetch and import run when `--auto-prune` is on
//! and their file system lacks space: garbage first, then least recently used images that a
//! registry has (so they can be fetched again), with the base VMs only they needed, one at a
//! time until enough is free. It never removes the image being fetched or imported, images
//! clones need, or images that were only exported here.
//!
//! The last use of an image is its `.sardine/used` record; an image without one (made by
//! sardinecake 0.4.2 or skopeo) counts as used when its manifest file was written. A dry run
//! plans exactly the same and reports the same numbers, but changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sardine_config::format_size;
use serde::Serialize;

use sardine_oci::Digest;
use sardine_oci::layout::{ImageEntry, Store};
use sardine_oci::lock::LockGuard;

use crate::error::ImageError;
use crate::list::{VmEntry, allocated_in, ids_needed_by_clones, list_vms, rfc3339};
use crate::store::{absolute_store, available_space, image_blobs};

/// Interrupted imports untouched for this long are leftovers.
const STALE_AGE: Duration = Duration::from_secs(3600);

/// What to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions<'a> {
    /// The local store.
    pub store: &'a Store,
    /// libvirt URI (`None`: libvirt's default).
    pub connect: Option<&'a str>,
    /// Only images not used for this long are removed.
    pub older_than: Option<Duration>,
    /// Remove least recently used images until the store's images take at most this many bytes.
    pub space_budget: Option<u64>,
    /// Plan and report, but remove nothing.
    pub dry_run: bool,
}

/// An image (a manifest with all its tags in one repository) that was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedImage {
    /// The repository.
    pub name: String,
    /// Its tags (empty for an untagged manifest).
    pub tags: Vec<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// The image ID (config digest).
    pub id: Digest,
    /// Its last use (RFC 3339).
    pub last_used: String,
    /// Bytes of the store freed by removing it (blobs other images share are not counted).
    pub freed: u64,
}

/// An imported base VM that was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedVm {
    /// Its name (the image ID).
    pub name: String,
    /// Its directory.
    pub directory: Option<PathBuf>,
    /// Bytes its directory occupied.
    pub freed: u64,
}

/// A leftover of an interrupted import that was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedLeftover {
    /// The directory.
    pub path: PathBuf,
    /// Bytes it occupied.
    pub freed: u64,
}

/// What [`prune`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Unreferenced blobs, orphaned pool files and stale temp files removed.
    pub garbage_files: u64,
    /// Bytes they occupied.
    pub garbage_freed: u64,
    /// Images removed, least recently used first.
    pub images: Vec<PrunedImage>,
    /// Imported base VMs removed.
    pub vms: Vec<PrunedVm>,
    /// Leftovers of interrupted imports removed.
    pub leftovers: Vec<PrunedLeftover>,
    /// Bytes the store's images take afterwards.
    pub store_size: u64,
    /// Whether `space_budget` was given and could not be met (what is left is needed or recent).
    pub over_budget: bool,
    /// Total bytes freed.
    pub freed: u64,
}

/// Prunes the store and the VMs made from it; see the module documentation.
pub fn prune(options: &PruneOptions<'_>) -> Result<PruneReport, ImageError> {
    let store = options.store;
    let garbage = sardine_oci::layout::gc(store, options.dry_run)?;
    let selective = options.older_than.is_some() || options.space_budget.is_some();
    let vms = list_vms(options.connect)?;
    let units = image_units(store)?;
    let plan = if selective {
        plan_images(
            &units,
            &ids_needed_by_clones(&vms),
            options,
            SystemTime::now(),
        )
    } else {
        Plan {
            remove: Vec::new(),
            store_size: store_size(&units),
            over_budget: false,
            freed: Vec::new(),
        }
    };
    let images = remove_images(store, &units, &plan, options.dry_run)?;
    let remaining_ids: HashSet<&str> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| !plan.remove.contains(i))
        .map(|(_, unit)| unit.id.as_str())
        .collect();
    // Only VMs imported from this store (recorded in their metadata) or, for VMs imported
    // before that was recorded, of images this prune removes: other stores' VMs (other users,
    // other tests) share the libvirt host, and their images are not ours to judge.
    let removed_ids: HashSet<&str> = plan
        .remove
        .iter()
        .map(|&i| units[i].id.as_str())
        .filter(|id| !remaining_ids.contains(id))
        .collect();
    let this_store = absolute_store(store);
    let orphaned = |vm: &VmEntry| match &vm.store {
        Some(recorded) => {
            Some(recorded) == this_store.as_ref() && !remaining_ids.contains(vm.image_id.as_str())
        }
        None => removed_ids.contains(vm.image_id.as_str()),
    };
    let vms_removed = if selective {
        remove_base_vms(store, &vms, &orphaned, options.connect, options.dry_run)?
    } else {
        Vec::new()
    };
    let leftovers = remove_leftovers(&vms, options.dry_run)?;
    if !options.dry_run && !images.is_empty() {
        let collected = sardine_oci::layout::gc(store, false)?;
        tracing::debug!("collected the blobs of the removed images: {collected:?}");
    }
    let freed = garbage.bytes
        + images.iter().map(|i| i.freed).sum::<u64>()
        + vms_removed.iter().map(|v| v.freed).sum::<u64>()
        + leftovers.iter().map(|l| l.freed).sum::<u64>();
    Ok(PruneReport {
        dry_run: options.dry_run,
        garbage_files: garbage.files,
        garbage_freed: garbage.bytes,
        images,
        vms: vms_removed,
        leftovers,
        store_size: plan.store_size,
        over_budget: plan.over_budget,
        freed,
    })
}

/// What [`make_room`] needs.
#[derive(Debug, Clone)]
pub struct RoomRequest<'a> {
    /// The local store.
    pub store: &'a Store,
    /// libvirt URI (`None`: libvirt's default).
    pub connect: Option<&'a str>,
    /// A directory on the file system that needs the space (the store, or the VM directory).
    pub dir: &'a Path,
    /// Bytes the operation is about to write there.
    pub needed: u64,
    /// Bytes to leave free on top of that (for the clones' overlays, logs, ...).
    pub keep_free: u64,
    /// Manifest digest of the image being fetched or imported, never removed.
    pub keep: &'a str,
}

/// Frees space on the file system of `request.dir` until `needed + keep_free` bytes are
/// available: the store's garbage first, then, least recently used first and one at a time,
/// images a registry has (their `.sardine/remote` record) with the base VMs only they needed.
/// Returns what it removed; `over_budget` says the space is still short (what is left is
/// needed, was only exported here, or is on another file system).
pub fn make_room(request: &RoomRequest<'_>) -> Result<PruneReport, ImageError> {
    make_room_with(request, &|| available_space(request.dir))
}

/// [`make_room`] with `available` telling the free space of `request.dir`.
fn make_room_with(
    request: &RoomRequest<'_>,
    available: &dyn Fn() -> Result<u64, ImageError>,
) -> Result<PruneReport, ImageError> {
    let wanted = request.needed.saturating_add(request.keep_free);
    let mut report = PruneReport::empty();
    if available()? >= wanted {
        return Ok(report);
    }
    let store = request.store;
    let garbage = sardine_oci::layout::gc(store, false)?;
    (report.garbage_files, report.garbage_freed) = (garbage.files, garbage.bytes);
    let vms = list_vms(request.connect)?;
    let units = image_units(store)?;
    let eligible =
        |unit: &Unit| unit.digest != request.keep && store.remote_of(&unit.digest).is_some();
    let this_store = absolute_store(store);
    let mut removed: Vec<usize> = Vec::new();
    for index in lru_candidates(&units, &ids_needed_by_clones(&vms), eligible) {
        if available()? >= wanted {
            break;
        }
        let before = size_without(&units, &removed);
        removed.push(index);
        let after = size_without(&units, &removed);
        let plan = Plan {
            remove: vec![index],
            freed: vec![before - after],
            store_size: after,
            over_budget: false,
        };
        report
            .images
            .extend(remove_images(store, &units, &plan, false)?);
        let id = units[index].id.as_str();
        if !units
            .iter()
            .enumerate()
            .any(|(i, u)| !removed.contains(&i) && u.id == id)
        {
            let ours = |vm: &VmEntry| {
                vm.image_id == id
                    && vm
                        .store
                        .as_ref()
                        .is_none_or(|s| Some(s) == this_store.as_ref())
            };
            report
                .vms
                .extend(remove_base_vms(store, &vms, &ours, request.connect, false)?);
        }
        sardine_oci::layout::gc(store, false)?;
    }
    let remaining: Vec<&Unit> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(_, u)| u)
        .collect();
    for &index in &removed {
        let digest = &units[index].digest;
        if !remaining.iter().any(|u| &u.digest == digest)
            && let Err(e) = store.forget_records(digest)
        {
            tracing::warn!("cannot remove the records of {digest}: {e}");
        }
    }
    report.store_size = size_without(&units, &removed);
    report.over_budget = available()? < wanted;
    report.freed = report.garbage_freed
        + report.images.iter().map(|i| i.freed).sum::<u64>()
        + report.vms.iter().map(|v| v.freed).sum::<u64>();
    Ok(report)
}

/// [`make_room`] for fetch and import: logs what it removed, and a failure or space still
/// short as a warning. The operation goes on either way (and fails cleanly if the space really
/// runs out).
pub fn make_room_and_log(request: &RoomRequest<'_>) {
    let report = match make_room(request) {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!(
                "auto-prune: cannot free space for {}: {e}",
                request.dir.display()
            );
            return;
        }
    };
    for image in &report.images {
        tracing::info!(
            "auto-prune: removed image {}@{} (last used {}), {} freed",
            image.name,
            image.digest,
            image.last_used,
            format_size(image.freed)
        );
    }
    for vm in &report.vms {
        tracing::info!(
            "auto-prune: removed VM {}, {} freed",
            vm.name,
            format_size(vm.freed)
        );
    }
    if report.over_budget {
        tracing::warn!(
            "auto-prune: {} still has less than {} free (needed {} plus keep-free {}); what is left is needed by clones, was only exported here, or is on another file system",
            request.dir.display(),
            format_size(request.needed.saturating_add(request.keep_free)),
            format_size(request.needed),
            format_size(request.keep_free)
        );
    }
}

/// Automatic pruning before a fetch ([`sardine_oci::transfer::MakeRoom`]): frees space in the
/// store's file system with [`make_room_and_log`].
#[derive(Debug, Clone)]
pub(crate) struct AutoPrune {
    /// The local store.
    pub store: Store,
    /// libvirt URI (`None`: libvirt's default).
    pub connect: Option<String>,
    /// Bytes to leave free on top of what the fetch needs.
    pub keep_free: u64,
}

impl sardine_oci::transfer::MakeRoom for AutoPrune {
    fn make_room(&self, needed: u64, keep: &Digest) {
        make_room_and_log(&RoomRequest {
            store: &self.store,
            connect: self.connect.as_deref(),
            dir: self.store.root(),
            needed,
            keep_free: self.keep_free,
            keep,
        });
    }
}

impl PruneReport {
    /// A report of nothing removed.
    fn empty() -> Self {
        PruneReport {
            dry_run: false,
            garbage_files: 0,
            garbage_freed: 0,
            images: Vec::new(),
            vms: Vec::new(),
            leftovers: Vec::new(),
            store_size: 0,
            over_budget: false,
            freed: 0,
        }
    }
}

/// A manifest of one repository, with all its tags: what prune removes at once.
#[derive(Debug, Clone)]
struct Unit {
    name: String,
    tags: Vec<String>,
    digest: Digest,
    id: Digest,
    last_used: SystemTime,
    /// (file identity, bytes) of each of its blob files present in the repository.
    files: Vec<(FileId, u64)>,
}

/// (device, inode): blobs are hard-linked between repositories and the pool.
type FileId = (u64, u64);

/// The store's images grouped by (repository, manifest). Images whose manifest cannot be read
/// are left out (and so never removed): what they reference is unknown.
fn image_units(store: &Store) -> Result<Vec<Unit>, ImageError> {
    let mut units: Vec<Unit> = Vec::new();
    for entry in store.list()? {
        if let Some(unit) = units
            .iter_mut()
            .find(|u| u.name == entry.name && u.digest == entry.digest)
        {
            unit.tags.extend(entry.tag);
            continue;
        }
        match unit_of(store, &entry) {
            Some(unit) => units.push(unit),
            None => tracing::warn!(
                "prune: keeping {}@{}, whose manifest cannot be read",
                entry.name,
                entry.digest
            ),
        }
    }
    Ok(units)
}

fn unit_of(store: &Store, entry: &ImageEntry) -> Option<Unit> {
    let blobs = image_blobs(store, &entry.name, None, Some(&entry.digest))?;
    let repo = store.existing_repo(&entry.name).ok()?;
    let mut files = Vec::new();
    for digest in blobs.keys() {
        let Ok(meta) = fs_err::metadata(repo.blob_path(digest)) else {
            continue;
        };
        files.push(((meta.dev(), meta.ino()), meta.len()));
    }
    let manifest_written = fs_err::metadata(repo.blob_path(&entry.digest))
        .ok()
        .and_then(|m| m.modified().ok());
    let last_used = store
        .last_used(&entry.digest)
        .or(manifest_written)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some(Unit {
        name: entry.name.clone(),
        tags: entry.tag.iter().cloned().collect(),
        digest: entry.digest.clone(),
        id: entry.id.clone()?,
        last_used,
        files,
    })
}

/// Bytes the blob files of `units` take, each file counted once.
fn store_size<'a>(units: impl IntoIterator<Item = &'a Unit>) -> u64 {
    let distinct: HashMap<FileId, u64> = units
        .into_iter()
        .flat_map(|u| u.files.iter().copied())
        .collect();
    distinct.values().sum()
}

/// Bytes the blob files of the units not in `removed` take.
fn size_without(units: &[Unit], removed: &[usize]) -> u64 {
    store_size(
        units
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(_, u)| u),
    )
}

/// Which units to remove (indexes into the units, in removal order) and what each frees.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    remove: Vec<usize>,
    freed: Vec<u64>,
    store_size: u64,
    over_budget: bool,
}

/// Least recently used candidates first; see the module documentation.
fn plan_images(
    units: &[Unit],
    protected_ids: &BTreeSet<String>,
    options: &PruneOptions<'_>,
    now: SystemTime,
) -> Plan {
    let old_enough = |unit: &Unit| {
        options.older_than.is_none_or(|age| {
            now.duration_since(unit.last_used)
                .is_ok_and(|unused| unused >= age)
        })
    };
    let candidates = lru_candidates(units, protected_ids, old_enough);
    let mut kept: Vec<bool> = vec![true; units.len()];
    let mut size = store_size(units);
    let mut plan = Plan {
        remove: Vec::new(),
        freed: Vec::new(),
        store_size: size,
        over_budget: false,
    };
    for index in candidates {
        if options.space_budget.is_some_and(|budget| size <= budget) {
            break;
        }
        kept[index] = false;
        let after = store_size(units.iter().zip(&kept).filter(|(_, k)| **k).map(|(u, _)| u));
        plan.remove.push(index);
        plan.freed.push(size.saturating_sub(after));
        size = after;
    }
    plan.store_size = size;
    plan.over_budget = options.space_budget.is_some_and(|budget| size > budget);
    plan
}

/// Indexes of the units clones do not need and `eligible` accepts, least recently used first.
fn lru_candidates(
    units: &[Unit],
    protected_ids: &BTreeSet<String>,
    eligible: impl Fn(&Unit) -> bool,
) -> Vec<usize> {
    let mut candidates: Vec<usize> = (0..units.len())
        .filter(|&i| !protected_ids.contains(units[i].id.as_str()) && eligible(&units[i]))
        .collect();
    candidates.sort_by(|&a, &b| {
        let (a, b) = (&units[a], &units[b]);
        (a.last_used, &a.name, &a.digest).cmp(&(b.last_used, &b.name, &b.digest))
    });
    candidates
}

fn remove_images(
    store: &Store,
    units: &[Unit],
    plan: &Plan,
    dry_run: bool,
) -> Result<Vec<PrunedImage>, ImageError> {
    let mut removed = Vec::new();
    for (&index, &freed) in plan.remove.iter().zip(&plan.freed) {
        let unit = &units[index];
        if !dry_run {
            store
                .existing_repo(&unit.name)?
                .remove_manifest(&unit.digest)?;
            let still_listed = units
                .iter()
                .enumerate()
                .any(|(i, u)| u.digest == unit.digest && !plan.remove.contains(&i));
            if !still_listed && let Err(e) = store.forget_records(&unit.digest) {
                tracing::warn!("cannot remove the use record of {}: {e}", unit.digest);
            }
        }
        tracing::info!(
            "prune: {} image {}@{}",
            verb(dry_run),
            unit.name,
            unit.digest
        );
        removed.push(PrunedImage {
            name: unit.name.clone(),
            tags: unit.tags.clone(),
            digest: unit.digest.clone(),
            id: unit.id.clone(),
            last_used: rfc3339(unit.last_used),
            freed,
        });
    }
    Ok(removed)
}

/// Imported base VMs that are shut off, serve no clone and are `orphaned`.
fn remove_base_vms(
    store: &Store,
    vms: &[VmEntry],
    orphaned: &dyn Fn(&VmEntry) -> bool,
    connect: Option<&str>,
    dry_run: bool,
) -> Result<Vec<PrunedVm>, ImageError> {
    let _no_use = if dry_run {
        None
    } else {
        match sardine_oci::lock::try_lock_exclusive(&base_vm_lock(store))? {
            Some(guard) => Some(guard),
            None => {
                tracing::info!(
                    "prune: images of {} are being imported or cloned; no base VM is removed this time",
                    store.root().display()
                );
                return Ok(Vec::new());
            }
        }
    };
    let bases: HashSet<&str> = vms.iter().filter_map(|vm| vm.base.as_deref()).collect();
    let mut removed = Vec::new();
    for vm in vms {
        let removable = vm.is_imported_base()
            && vm.state == "stopped"
            && !vm.transient
            && !bases.contains(vm.name.as_str())
            && orphaned(vm);
        if !removable {
            continue;
        }
        if !dry_run {
            crate::remove::remove_vm(connect, &vm.name, false)?;
        }
        tracing::info!("prune: {} VM {}", verb(dry_run), vm.name);
        removed.push(PrunedVm {
            name: vm.name.clone(),
            directory: vm.directory.clone(),
            freed: vm.disk_usage.unwrap_or(0),
        });
    }
    Ok(removed)
}

/// The lock that keeps prune from removing a base VM between its import and the definition of
/// its clones: an import holds it shared from the moment it finds or defines the VM
/// ([`crate::import::Imported::in_use`]) until the caller drops the result, after cloning;
/// prune removes base VMs only when it gets the lock exclusively at once (it never waits: an
/// import's own auto-prune runs inside such a section).
pub(crate) fn base_vm_lock(store: &Store) -> PathBuf {
    store.root().join(".sardine/base-vms.lock")
}

/// Takes [`base_vm_lock`] shared.
pub(crate) fn use_base_vms(store: &Store) -> Result<std::sync::Arc<LockGuard>, ImageError> {
    Ok(std::sync::Arc::new(sardine_oci::lock::lock_shared(
        &base_vm_lock(store),
    )?))
}

/// `.<name>.importing/` (an interrupted import) and `.<name>.removing/` (an interrupted `rm`)
/// directories in the VM directories of known VMs, stale and unlocked.
fn remove_leftovers(vms: &[VmEntry], dry_run: bool) -> Result<Vec<PrunedLeftover>, ImageError> {
    let vmdirs: BTreeSet<&Path> = vms
        .iter()
        .filter_map(|vm| vm.directory.as_deref()?.parent())
        .collect();
    let mut removed = Vec::new();
    for vmdir in vmdirs {
        let Ok(entries) = fs_err::read_dir(vmdir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name.strip_prefix('.').and_then(|n| {
                n.strip_suffix(".importing")
                    .or_else(|| n.strip_suffix(".removing"))
            }) else {
                continue;
            };
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || !is_stale(&path) {
                continue;
            }
            // A running import holds this lock for as long as it writes into the directory.
            let Some(_lock) =
                sardine_oci::lock::try_lock_exclusive(&vmdir.join(format!(".{name}.lock")))?
            else {
                continue;
            };
            let freed = allocated_in(&path);
            if !dry_run {
                fs_err::remove_dir_all(&path)?;
            }
            tracing::info!(
                "prune: {} the leftovers of an interrupted import or rm: {}",
                verb(dry_run),
                path.display()
            );
            removed.push(PrunedLeftover { path, freed });
        }
    }
    Ok(removed)
}

/// What the log says prune did to something: only "would remove" with `--dry-run`.
fn verb(dry_run: bool) -> &'static str {
    if dry_run { "would remove" } else { "removed" }
}

fn is_stale(path: &Path) -> bool {
    let modified = fs_err::metadata(path).ok().and_then(|m| m.modified().ok());
    modified
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age > STALE_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn unit(name: &str, days_ago: u64, files: &[(u64, u64)]) -> Unit {
        Unit {
            name: name.into(),
            tags: vec!["1".into()],
            digest: Digest::of(format!("m-{name}").as_bytes()),
            id: Digest::of(format!("id-{name}").as_bytes()),
            last_used: now() - DAY * days_ago as u32,
            files: files
                .iter()
                .map(|&(inode, size)| ((1, inode), size))
                .collect(),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * 20_000
    }

    fn options(
        store: &Store,
        older_than: Option<Duration>,
        space_budget: Option<u64>,
    ) -> PruneOptions<'_> {
        PruneOptions {
            store,
            connect: None,
            older_than,
            space_budget,
            dry_run: true,
        }
    }

    fn removed_names(units: &[Unit], plan: &Plan) -> Vec<String> {
        plan.remove.iter().map(|&i| units[i].name.clone()).collect()
    }

    /// Stores an image `name:1` with one layer of `layer_size` bytes, last used `days_ago`.
    fn stored_image(
        store: &Store,
        name: &str,
        layer_size: usize,
        days_ago: u32,
        remote: bool,
    ) -> Digest {
        let repo = store.repo(name).unwrap();
        let (config, config_size) = repo
            .put_blob_bytes(format!("{{\"name\":\"{name}\"}}").as_bytes())
            .unwrap();
        let (layer, layer_size) = repo
            .put_blob_bytes(&vec![name.as_bytes()[0]; layer_size])
            .unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": layer_size}],
        });
        let (digest, size) = repo
            .put_blob_bytes(manifest.to_string().as_bytes())
            .unwrap();
        repo.set_tag(
            &digest,
            size,
            "application/vnd.oci.image.manifest.v1+json",
            Some("1"),
        )
        .unwrap();
        let marker = store
            .root()
            .join(".sardine/used")
            .join(digest.trim_start_matches("sha256:"));
        let file = fs_err::OpenOptions::new()
            .append(true)
            .open(marker)
            .unwrap();
        file.set_modified(SystemTime::now() - DAY * days_ago)
            .unwrap();
        if remote {
            store.mark_remote(&digest, &format!("registry.example/{name}:1"));
        }
        digest
    }

    fn names(store: &Store) -> Vec<String> {
        let mut names: Vec<String> = store.list().unwrap().into_iter().map(|e| e.name).collect();
        names.sort();
        names
    }

    /// The names of the images a report says were removed, in order.
    fn removed(report: &PruneReport) -> Vec<&str> {
        report.images.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn make_room_removes_lru_fetched_images_until_enough_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        stored_image(&store, "oldest-exported", 4000, 9, false);
        stored_image(&store, "old", 3000, 5, true);
        stored_image(&store, "mid", 2000, 3, true);
        let keep = stored_image(&store, "kept", 1000, 8, true);
        stored_image(&store, "new", 1000, 1, true);
        // The file system has 500 bytes free, plus whatever the store no longer takes.
        let initial = store_size(&image_units(&store).unwrap());
        let available = || Ok(500 + initial - store_size(&image_units(&store)?));
        let request = |needed| RoomRequest {
            store: &store,
            connect: Some("test:///default"),
            dir: dir.path(),
            needed,
            keep_free: 100,
            keep: &keep,
        };

        let nothing = make_room_with(&request(400), &available).unwrap();
        assert!(
            nothing.images.is_empty() && !nothing.over_budget,
            "{nothing:?}"
        );

        // 3400 needed: removing "old" (3000 bytes and its small blobs) is enough.
        let report = make_room_with(&request(3300), &available).unwrap();
        assert_eq!(removed(&report), ["old"]);
        assert!(!report.over_budget && report.freed > 3000, "{report:?}");
        assert_eq!(names(&store), ["kept", "mid", "new", "oldest-exported"]);
        assert_eq!(
            store.remote_of(&report.images[0].digest),
            None,
            "the records go with the image"
        );

        // More than can be freed: every fetched image goes but the one at hand; exported ones stay.
        let report = make_room_with(&request(1 << 40), &available).unwrap();
        assert_eq!(removed(&report), ["mid", "new"]);
        assert!(report.over_budget, "{report:?}");
        assert_eq!(names(&store), ["kept", "oldest-exported"]);
    }

    #[test]
    fn shared_blobs_count_once() {
        let units = [
            unit("a", 1, &[(1, 100), (2, 10)]),
            unit("b", 1, &[(1, 100), (3, 5)]),
        ];
        assert_eq!(store_size(&units), 115);
    }

    #[test]
    fn a_budget_removes_least_recently_used_first_until_it_fits() {
        let store = Store::new("/nonexistent");
        let units = [
            unit("new", 1, &[(1, 100)]),
            unit("oldest", 9, &[(2, 100)]),
            unit("old", 5, &[(3, 100), (1, 100)]),
        ];
        let plan = plan_images(
            &units,
            &BTreeSet::new(),
            &options(&store, None, Some(150)),
            now(),
        );
        assert_eq!(removed_names(&units, &plan), ["oldest", "old"]);
        // "old" shares inode 1 with "new": removing it frees only its own blob.
        assert_eq!(plan.freed, [100, 100]);
        assert_eq!((plan.store_size, plan.over_budget), (100, false));
        let nothing = plan_images(
            &units,
            &BTreeSet::new(),
            &options(&store, None, Some(300)),
            now(),
        );
        assert!(nothing.remove.is_empty());
    }

    #[test]
    fn images_clones_need_are_kept_even_over_budget() {
        let store = Store::new("/nonexistent");
        let units = [
            unit("base", 30, &[(1, 100)]),
            unit("other", 10, &[(2, 100)]),
        ];
        let protected = BTreeSet::from([Digest::of(b"id-base").to_string()]);
        let plan = plan_images(&units, &protected, &options(&store, None, Some(0)), now());
        assert_eq!(removed_names(&units, &plan), ["other"]);
        assert_eq!((plan.store_size, plan.over_budget), (100, true));
    }

    #[test]
    fn older_than_alone_removes_every_old_image_and_limits_a_budget() {
        let store = Store::new("/nonexistent");
        let units = [
            unit("a", 40, &[(1, 10)]),
            unit("b", 31, &[(2, 10)]),
            unit("c", 2, &[(3, 10)]),
        ];
        let plan = plan_images(
            &units,
            &BTreeSet::new(),
            &options(&store, Some(DAY * 30), None),
            now(),
        );
        assert_eq!(removed_names(&units, &plan), ["a", "b"]);
        let both = plan_images(
            &units,
            &BTreeSet::new(),
            &options(&store, Some(DAY * 30), Some(20)),
            now(),
        );
        assert_eq!(removed_names(&units, &both), ["a"]);
        let strict = plan_images(
            &units,
            &BTreeSet::new(),
            &options(&store, Some(DAY * 30), Some(0)),
            now(),
        );
        assert_eq!(
            removed_names(&units, &strict),
            ["a", "b"],
            "recent images stay even over budget"
        );
        assert!(strict.over_budget);
    }
}
