//! `sarde list`: the images of the local store and whether their VM is imported and running;
//! `sarde list --vms`: the VMs sarde imported or cloned.
//!
//! The JSON output has sardinecake 0.4.2's keys first and unchanged (`source`, `name`, `tag`,
//! `digest`, `id`, `state` with true = running, false = stopped, null = missing), then
//! `size` (bytes of the image's blobs in the store, compressed) and `last_used` (RFC 3339,
//! null if never recorded). The text tables are sarde's (`commands/list.rs`). Unlike 0.4.2, one
//! libvirt connection serves the whole listing, and a broken entry is listed with what can be
//! read instead of crashing the command.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use sardine_libvirt::{DomainXml, Libvirt, VmState};
use sardine_oci::Digest;
use sardine_oci::layout::Store;

use crate::error::ImageError;
use crate::remove::{disk_files, own_directory};
use crate::store::image_blobs;

/// One image of the local store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListEntry {
    /// Always `oci`.
    pub source: String,
    /// The repository, relative to the store.
    pub name: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// The image ID (config digest).
    pub id: Option<Digest>,
    /// `Some(true)` running, `Some(false)` defined but not running, `None` not imported.
    pub state: Option<bool>,
    /// Bytes of the manifest, config and (distinct) layers, as stored; `None` if unreadable.
    pub size: Option<u64>,
    /// When the image was last fetched, exported, imported or cloned (RFC 3339, UTC).
    pub last_used: Option<String>,
}

/// Lists the local images, with the state of the VM named after each image ID.
pub fn list(store: &Store, connect: Option<&str>) -> Result<Vec<ListEntry>, ImageError> {
    let images = store.list()?;
    let libvirt = if images.is_empty() {
        None
    } else {
        Libvirt::open_read_only(connect).ok()
    };
    let mut entries = Vec::with_capacity(images.len());
    for image in images {
        let state = match (&libvirt, &image.id) {
            (Some(libvirt), Some(id)) => state_of(libvirt, id),
            _ => None,
        };
        let size = image_blobs(store, &image.name, None, Some(&image.digest))
            .map(|blobs| blobs.values().sum());
        let last_used = store.last_used(&image.digest).map(rfc3339);
        entries.push(ListEntry {
            source: "oci".into(),
            name: image.name,
            tag: image.tag,
            digest: image.digest,
            id: image.id,
            state,
            size,
            last_used,
        });
    }
    Ok(entries)
}

/// A time as RFC 3339 in UTC, to the second (`2025-01-31T12:00:00Z`).
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn state_of(libvirt: &Libvirt, name: &str) -> Option<bool> {
    let vm = libvirt.lookup(name).ok()??;
    Some(matches!(
        vm.state().ok()?,
        VmState::Running | VmState::Paused
    ))
}

/// One VM that sarde imported or cloned (its domain records the image it comes from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmEntry {
    /// The libvirt name.
    pub name: String,
    /// `stopped` (shut off) or `running` (also paused, crashed or shutting down).
    pub state: String,
    /// Whether the domain is transient (an ephemeral clone).
    pub transient: bool,
    /// The image reference it was imported from (clones inherit their base's).
    pub image: String,
    /// The image ID (config digest).
    pub image_id: String,
    /// The store it was imported from (`null` for VMs imported before sarde recorded it).
    pub store: Option<String>,
    /// For a clone: the VM whose disks back its disks.
    pub base: Option<String>,
    /// The directory sarde made for it (`<vmdir>/<name>/`), if it has one.
    pub directory: Option<PathBuf>,
    /// Bytes allocated on disk by the files in that directory.
    pub disk_usage: Option<u64>,
}

impl VmEntry {
    /// Whether this is an imported base VM: named after its image ID, as `import` names it.
    pub fn is_imported_base(&self) -> bool {
        self.name == self.image_id
    }
}

/// A domain as the VM listing sees it.
struct Domain {
    name: String,
    state: VmState,
    persistent: bool,
    xml: DomainXml,
    /// Its own writable disk files.
    disks: Vec<PathBuf>,
}

/// The VMs sarde imported or cloned, sorted by name.
pub fn list_vms(connect: Option<&str>) -> Result<Vec<VmEntry>, ImageError> {
    let libvirt = Libvirt::open_read_only(connect)?;
    let mut domains = Vec::new();
    for vm in libvirt.list()? {
        let Ok(text) = vm.xml(false) else { continue };
        let Ok(xml) = DomainXml::parse(&text) else {
            tracing::warn!("skipping VM {}: its domain XML cannot be parsed", vm.name());
            continue;
        };
        // Another process's transient VM may vanish while it is looked at: it is no error.
        let (state, persistent) = match (vm.state(), vm.is_persistent()) {
            (Ok(state), Ok(persistent)) => (state, persistent),
            (Err(e), _) | (_, Err(e)) if e.is_no_domain() => continue,
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        let disks = disk_files(&xml);
        domains.push(Domain {
            name: vm.name().to_owned(),
            state,
            persistent,
            xml,
            disks,
        });
    }
    let owners: HashMap<&Path, &str> = domains
        .iter()
        .flat_map(|d| d.disks.iter().map(|f| (f.as_path(), d.name.as_str())))
        .collect();
    let mut entries: Vec<VmEntry> = domains
        .iter()
        .filter_map(|domain| vm_entry(domain, &owners))
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn vm_entry(domain: &Domain, owners: &HashMap<&Path, &str>) -> Option<VmEntry> {
    let image = domain.xml.image_metadata()?;
    let directory = own_directory(&domain.name, &domain.disks).filter(|dir| dir.is_dir());
    Some(VmEntry {
        name: domain.name.clone(),
        state: if domain.state == VmState::ShutOff {
            "stopped"
        } else {
            "running"
        }
        .to_owned(),
        transient: !domain.persistent,
        image: image.reference,
        image_id: image.id,
        store: image.store,
        base: base_of(&domain.name, &domain.xml.all_disk_files(), owners),
        disk_usage: directory.as_deref().map(allocated_in),
        directory,
    })
}

/// The first VM other than `name` owning a file of the backing chains: the direct base.
fn base_of(name: &str, chain_files: &[String], owners: &HashMap<&Path, &str>) -> Option<String> {
    chain_files
        .iter()
        .filter_map(|file| owners.get(Path::new(file)))
        .find(|owner| **owner != name)
        .map(|owner| (*owner).to_owned())
}

/// Bytes allocated by the regular files directly in `dir` (unreadable files count as 0).
pub(crate) fn allocated_in(dir: &Path) -> u64 {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| sardine_disk::sparse::allocated_bytes(&e.path()).unwrap_or(0))
        .sum()
}

/// The image IDs of the VMs that clones depend on, directly or through other clones.
pub fn ids_needed_by_clones(vms: &[VmEntry]) -> BTreeSet<String> {
    let by_name: HashMap<&str, &VmEntry> = vms.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut needed = BTreeSet::new();
    for vm in vms {
        let mut base = vm.base.as_deref();
        let mut hops = 0;
        while let Some(name) = base.filter(|_| hops < vms.len()) {
            let Some(entry) = by_name.get(name) else {
                break;
            };
            needed.insert(entry.image_id.clone());
            base = entry.base.as_deref();
            hops += 1;
        }
    }
    needed
}
