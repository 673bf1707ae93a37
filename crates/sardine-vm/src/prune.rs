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
//! 4. leftovers of interrupted imports (`<vmdir>/.<name>.importing/`, untouched for an hour
//!    and not locked by a running import) next to the directories of known VMs.
//!
//! The last use of an image is its `.sardine/used` record; an image without one (made by
//! sardinecake 0.4.2 or skopeo) counts as used when its manifest file was written. A dry run
//! plans exactly the same and reports the same numbers, but changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use sardine_oci::layout::{ImageEntry, Store};

use crate::error::ImageError;
use crate::list::{VmEntry, allocated_in, ids_needed_by_clones, image_blobs, list_vms, rfc3339};

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
    pub digest: String,
    /// The image ID (config digest).
    pub id: String,
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
        plan_images(&units, &ids_needed_by_clones(&vms), options, SystemTime::now())
    } else {
        Plan { remove: Vec::new(), store_size: store_size(&units), over_budget: false, freed: Vec::new() }
    };
    let images = remove_images(store, &units, &plan, options.dry_run)?;
    let remaining_ids: HashSet<&str> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| !plan.remove.contains(i))
        .map(|(_, unit)| unit.id.as_str())
        .collect();
    // Only VMs of images this prune removes from this store: other stores' VMs (other users,
    // other tests) share the libvirt host, and their images are not ours to judge.
    let removed_ids: HashSet<&str> = plan
        .remove
        .iter()
        .map(|&i| units[i].id.as_str())
        .filter(|id| !remaining_ids.contains(id))
        .collect();
    let vms_removed =
        if selective { remove_base_vms(&vms, &removed_ids, options)? } else { Vec::new() };
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

/// A manifest of one repository, with all its tags: what prune removes at once.
#[derive(Debug, Clone)]
struct Unit {
    name: String,
    tags: Vec<String>,
    digest: String,
    id: String,
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
        if let Some(unit) = units.iter_mut().find(|u| u.name == entry.name && u.digest == entry.digest) {
            unit.tags.extend(entry.tag);
            continue;
        }
        match unit_of(store, &entry) {
            Some(unit) => units.push(unit),
            None => tracing::warn!("prune: keeping {}@{}, whose manifest cannot be read", entry.name, entry.digest),
        }
    }
    Ok(units)
}

fn unit_of(store: &Store, entry: &ImageEntry) -> Option<Unit> {
    let blobs = image_blobs(store, entry)?;
    let repo = store.existing_repo(&entry.name).ok()?;
    let mut files = Vec::new();
    for digest in blobs.keys() {
        let Some(meta) = repo.blob_path(digest).ok().and_then(|p| fs_err::metadata(p).ok()) else { continue };
        files.push(((meta.dev(), meta.ino()), meta.len()));
    }
    let manifest_written = repo.blob_path(&entry.digest).ok().and_then(|p| fs_err::metadata(p).ok()?.modified().ok());
    let last_used = store.last_used(&entry.digest).or(manifest_written).unwrap_or(SystemTime::UNIX_EPOCH);
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
    let distinct: HashMap<FileId, u64> = units.into_iter().flat_map(|u| u.files.iter().copied()).collect();
    distinct.values().sum()
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
fn plan_images(units: &[Unit], protected_ids: &BTreeSet<String>, options: &PruneOptions<'_>, now: SystemTime) -> Plan {
    let old_enough = |unit: &Unit| {
        options.older_than.is_none_or(|age| now.duration_since(unit.last_used).is_ok_and(|unused| unused >= age))
    };
    let mut candidates: Vec<usize> =
        (0..units.len()).filter(|&i| !protected_ids.contains(&units[i].id) && old_enough(&units[i])).collect();
    candidates.sort_by(|&a, &b| {
        let (a, b) = (&units[a], &units[b]);
        (a.last_used, &a.name, &a.digest).cmp(&(b.last_used, &b.name, &b.digest))
    });
    let mut kept: Vec<bool> = vec![true; units.len()];
    let mut size = store_size(units);
    let mut plan = Plan { remove: Vec::new(), freed: Vec::new(), store_size: size, over_budget: false };
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

fn remove_images(store: &Store, units: &[Unit], plan: &Plan, dry_run: bool) -> Result<Vec<PrunedImage>, ImageError> {
    let mut removed = Vec::new();
    for (&index, &freed) in plan.remove.iter().zip(&plan.freed) {
        let unit = &units[index];
        if !dry_run {
            store.existing_repo(&unit.name)?.remove_manifest(&unit.digest)?;
            let still_listed = units.iter().enumerate().any(|(i, u)| u.digest == unit.digest && !plan.remove.contains(&i));
            if !still_listed && let Err(e) = store.forget_used(&unit.digest) {
                tracing::warn!("cannot remove the use record of {}: {e}", unit.digest);
            }
        }
        tracing::info!("prune: removed image {}@{}", unit.name, unit.digest);
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

/// Imported base VMs that are shut off, serve no clone and whose image this prune removed.
fn remove_base_vms(vms: &[VmEntry], removed_ids: &HashSet<&str>, options: &PruneOptions<'_>) -> Result<Vec<PrunedVm>, ImageError> {
    let bases: HashSet<&str> = vms.iter().filter_map(|vm| vm.base.as_deref()).collect();
    let mut removed = Vec::new();
    for vm in vms {
        let removable = vm.is_imported_base()
            && vm.state == "stopped"
            && !vm.transient
            && !bases.contains(vm.name.as_str())
            && removed_ids.contains(vm.image_id.as_str());
        if !removable {
            continue;
        }
        if !options.dry_run {
            crate::remove::remove_vm(options.connect, &vm.name, false)?;
        }
        tracing::info!("prune: removed VM {}", vm.name);
        removed.push(PrunedVm { name: vm.name.clone(), directory: vm.directory.clone(), freed: vm.disk_usage.unwrap_or(0) });
    }
    Ok(removed)
}

/// `.<name>.importing/` directories in the VM directories of known VMs, stale and unlocked.
fn remove_leftovers(vms: &[VmEntry], dry_run: bool) -> Result<Vec<PrunedLeftover>, ImageError> {
    let vmdirs: BTreeSet<&Path> = vms.iter().filter_map(|vm| vm.directory.as_deref()?.parent()).collect();
    let mut removed = Vec::new();
    for vmdir in vmdirs {
        let Ok(entries) = fs_err::read_dir(vmdir) else { continue };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name.strip_prefix('.').and_then(|n| n.strip_suffix(".importing")) else { continue };
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || !is_stale(&path) {
                continue;
            }
            // A running import holds this lock for as long as it writes into the directory.
            let Some(_lock) = sardine_oci::lock::try_lock_exclusive(&vmdir.join(format!(".{name}.lock")))? else {
                continue;
            };
            let freed = allocated_in(&path);
            if !dry_run {
                fs_err::remove_dir_all(&path)?;
            }
            tracing::info!("prune: removed the leftovers of an interrupted import: {}", path.display());
            removed.push(PrunedLeftover { path, freed });
        }
    }
    Ok(removed)
}

fn is_stale(path: &Path) -> bool {
    let modified = fs_err::metadata(path).ok().and_then(|m| m.modified().ok());
    modified.and_then(|m| SystemTime::now().duration_since(m).ok()).is_some_and(|age| age > STALE_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn unit(name: &str, days_ago: u64, files: &[(u64, u64)]) -> Unit {
        Unit {
            name: name.into(),
            tags: vec!["1".into()],
            digest: format!("sha256:m-{name}"),
            id: format!("sha256:id-{name}"),
            last_used: now() - DAY * days_ago as u32,
            files: files.iter().map(|&(inode, size)| ((1, inode), size)).collect(),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * 20_000
    }

    fn options(store: &Store, older_than: Option<Duration>, space_budget: Option<u64>) -> PruneOptions<'_> {
        PruneOptions { store, connect: None, older_than, space_budget, dry_run: true }
    }

    fn removed_names(units: &[Unit], plan: &Plan) -> Vec<String> {
        plan.remove.iter().map(|&i| units[i].name.clone()).collect()
    }

    #[test]
    fn shared_blobs_count_once() {
        let units = [unit("a", 1, &[(1, 100), (2, 10)]), unit("b", 1, &[(1, 100), (3, 5)])];
        assert_eq!(store_size(&units), 115);
    }

    #[test]
    fn a_budget_removes_least_recently_used_first_until_it_fits() {
        let store = Store::new("/nonexistent");
        let units = [unit("new", 1, &[(1, 100)]), unit("oldest", 9, &[(2, 100)]), unit("old", 5, &[(3, 100), (1, 100)])];
        let plan = plan_images(&units, &BTreeSet::new(), &options(&store, None, Some(150)), now());
        assert_eq!(removed_names(&units, &plan), ["oldest", "old"]);
        // "old" shares inode 1 with "new": removing it frees only its own blob.
        assert_eq!(plan.freed, [100, 100]);
        assert_eq!((plan.store_size, plan.over_budget), (100, false));
        let nothing = plan_images(&units, &BTreeSet::new(), &options(&store, None, Some(300)), now());
        assert!(nothing.remove.is_empty());
    }

    #[test]
    fn images_clones_need_are_kept_even_over_budget() {
        let store = Store::new("/nonexistent");
        let units = [unit("base", 30, &[(1, 100)]), unit("other", 10, &[(2, 100)])];
        let protected = BTreeSet::from(["sha256:id-base".to_owned()]);
        let plan = plan_images(&units, &protected, &options(&store, None, Some(0)), now());
        assert_eq!(removed_names(&units, &plan), ["other"]);
        assert_eq!((plan.store_size, plan.over_budget), (100, true));
    }

    #[test]
    fn older_than_alone_removes_every_old_image_and_limits_a_budget() {
        let store = Store::new("/nonexistent");
        let units = [unit("a", 40, &[(1, 10)]), unit("b", 31, &[(2, 10)]), unit("c", 2, &[(3, 10)])];
        let plan = plan_images(&units, &BTreeSet::new(), &options(&store, Some(DAY * 30), None), now());
        assert_eq!(removed_names(&units, &plan), ["a", "b"]);
        let both = plan_images(&units, &BTreeSet::new(), &options(&store, Some(DAY * 30), Some(20)), now());
        assert_eq!(removed_names(&units, &both), ["a"]);
        let strict = plan_images(&units, &BTreeSet::new(), &options(&store, Some(DAY * 30), Some(0)), now());
        assert_eq!(removed_names(&units, &strict), ["a", "b"], "recent images stay even over budget");
        assert!(strict.over_budget);
    }
}
