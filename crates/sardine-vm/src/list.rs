//! `sarde list`: the images of the local store and whether their VM is imported and running;
//! `sarde list --vms`: the VMs sarde imported or cloned.
//!
//! The JSON output has sardinecake 0.4.2's keys first and unchanged (`source`, `name`, `tag`,
//! `digest`, `id`, `state` with true = running, false = stopped, null = missing), then
//! `size` (bytes of the image's blobs in the store, compressed) and `last_used` (RFC 3339,
//! null if never recorded). The text output keeps 0.4.2's layout exactly. Unlike 0.4.2, one
//! libvirt connection serves the whole listing, and a broken entry is listed with what can be
//! read instead of crashing the command.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sardine_config::format_size;
use serde::Serialize;

use sardine_libvirt::{DomainXml, Libvirt, VmState};
use sardine_oci::layout::{ImageEntry, Store};

use crate::error::ImageError;
use crate::remove::{disk_files, own_directory};

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
    pub digest: String,
    /// The image ID (config digest).
    pub id: Option<String>,
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
        let size = image_blobs(store, &image).map(|blobs| blobs.values().sum());
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

/// The blobs of an image (manifest, config, layers) with their sizes as the manifest states
/// them; `None` if the manifest cannot be read.
pub(crate) fn image_blobs(store: &Store, image: &ImageEntry) -> Option<HashMap<String, u64>> {
    let repo = store.existing_repo(&image.name).ok()?;
    let descriptor = repo.resolve(None, Some(&image.digest)).ok()?;
    let manifest = repo.read_manifest(&descriptor).ok()?;
    let mut blobs = HashMap::from([(image.digest.clone(), descriptor.size)]);
    for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
        blobs.insert(desc.digest.clone(), desc.size);
    }
    Some(blobs)
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
        let disks = disk_files(&xml);
        domains.push(Domain {
            name: vm.name().to_owned(),
            state: vm.state()?,
            persistent: vm.is_persistent()?,
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

/// The `list --vms` table: NAME, STATE, BASE, DISK USAGE, IMAGE, TAB-separated.
pub fn format_vms_text(vms: &[VmEntry]) -> String {
    let rows: Vec<[String; 5]> = vms
        .iter()
        .map(|vm| {
            [
                vm.name.clone(),
                if vm.transient {
                    format!("{} (ephemeral)", vm.state)
                } else {
                    vm.state.clone()
                },
                vm.base.clone().unwrap_or_else(|| "-".into()),
                vm.disk_usage
                    .map_or_else(|| "-".into(), sardine_config::format_size),
                vm.image.clone(),
            ]
        })
        .collect();
    let titles = ["NAME", "STATE", "BASE", "DISK USAGE", "IMAGE"].map(str::to_owned);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&titles])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&titles).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("\t").trim_end());
        out.push('\n');
    }
    out
}

/// The text table of sardinecake 0.4.2: `SOURCE`, `NAME`, `IMAGE ID`, `STATE`, TAB-separated.
///
/// Rows are sorted by (id, name, tag); each image ID gets one `name@digest` row with its
/// state, then one `name:tag` row per tag with the state shown as `   "   `.
///
/// `long` (`sarde list -l`) adds two columns, `SIZE` (as stored) and `LAST USED` (how long
/// ago), on the `name@digest` rows; without it the text is byte for byte 0.4.2's, which
/// scripts parse.
pub fn format_text(entries: &[ListEntry], long: bool) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".into());
    let state_text = |s: Option<bool>| match s {
        Some(true) => "running",
        Some(false) => "stopped",
        None => "missing",
    };
    // 0.4.2 counts the key's length only while it walks the rows: with no rows, the titles
    // alone set the widths (an empty listing's NAME column is `NAME `).
    let width = |title: &str, key: &str, values: Vec<usize>| {
        let key = if values.is_empty() { 0 } else { key.len() };
        values
            .into_iter()
            .chain([title.len(), key])
            .max()
            .unwrap_or(0)
    };
    let fs_source = width(
        "SOURCE",
        "source",
        entries.iter().map(|e| e.source.len()).collect(),
    );
    let fs_name = width(
        "NAME",
        "name",
        entries.iter().map(|e| e.name.len()).collect(),
    );
    let fs_tag = width(
        "",
        "tag",
        entries.iter().map(|e| text(&e.tag).len()).collect(),
    );
    let fs_digest = width(
        "",
        "digest",
        entries.iter().map(|e| e.digest.len()).collect(),
    );
    let fs_id = width(
        "IMAGE ID",
        "id",
        entries.iter().map(|e| text(&e.id).len()).collect(),
    );
    let fs_state = width(
        "STATE",
        "state",
        entries
            .iter()
            .map(|e| e.state.map_or(4, |s| if s { 4 } else { 5 }))
            .collect(),
    );
    let name_width = fs_tag.max(fs_digest) + fs_name + 1;
    let now = SystemTime::now();
    let size_text = |e: &ListEntry| e.size.map_or_else(|| "?".to_owned(), format_size);
    let used_text = |e: &ListEntry| {
        e.last_used
            .as_deref()
            .map_or_else(|| "never".to_owned(), |t| ago(t, now))
    };
    let fs_size = entries
        .iter()
        .map(|e| size_text(e).len())
        .chain(["SIZE".len()])
        .max()
        .unwrap_or(0);
    let row = |source: &str, name: &str, id: &str, state: &str, extra: Option<(&str, &str)>| {
        let mut line =
            format!("{source:<fs_source$}\t{name:<name_width$}\t{id:<fs_id$}\t{state:<fs_state$}");
        if long && let Some((size, used)) = extra {
            line = format!("{line}\t{size:<fs_size$}\t{used}");
        }
        line + "\n"
    };
    let mut out = row(
        "SOURCE",
        "NAME",
        "IMAGE ID",
        "STATE",
        Some(("SIZE", "LAST USED")),
    );
    let mut sorted: Vec<&ListEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        (text(&a.id), &a.name, a.tag.clone().unwrap_or_default()).cmp(&(
            text(&b.id),
            &b.name,
            b.tag.clone().unwrap_or_default(),
        ))
    });
    let mut last_id = None;
    for entry in &sorted {
        let id = text(&entry.id);
        if last_id.as_ref() != Some(&id) {
            out.push_str(&row(
                &entry.source,
                &format!("{}@{}", entry.name, entry.digest),
                &id,
                state_text(entry.state),
                Some((&size_text(entry), &used_text(entry))),
            ));
            last_id = Some(id.clone());
        }
        if let Some(tag) = &entry.tag {
            out.push_str(&row(
                &entry.source,
                &format!("{}:{tag}", entry.name),
                &id,
                "   \"   ",
                None,
            ));
        }
    }
    out
}

/// How long ago the RFC 3339 time `time` was, roughly: `just now`, `5 minutes ago`, `3 days ago`.
fn ago(time: &str, now: SystemTime) -> String {
    let Ok(then) = chrono::DateTime::parse_from_rfc3339(time) else {
        return time.to_owned();
    };
    let seconds = chrono::DateTime::<chrono::Utc>::from(now)
        .signed_duration_since(then)
        .num_seconds()
        .max(0);
    let (amount, unit) = match seconds {
        0..60 => return "just now".to_owned(),
        60..3600 => (seconds / 60, "minute"),
        3600..86_400 => (seconds / 3600, "hour"),
        86_400..1_209_600 => (seconds / 86_400, "day"),
        1_209_600..5_184_000 => (seconds / 604_800, "week"),
        _ => (seconds / 2_592_000, "month"),
    };
    format!("{amount} {unit}{} ago", if amount == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_rounded_down_to_one_unit() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let before = |seconds: u64| rfc3339(now - std::time::Duration::from_secs(seconds));
        assert_eq!(ago(&before(5), now), "just now");
        assert_eq!(ago(&before(61), now), "1 minute ago");
        assert_eq!(ago(&before(7200), now), "2 hours ago");
        assert_eq!(ago(&before(86_400 * 3), now), "3 days ago");
        assert_eq!(ago(&before(86_400 * 20), now), "2 weeks ago");
        assert_eq!(ago(&before(86_400 * 400), now), "13 months ago");
        assert_eq!(ago("garbage", now), "garbage");
    }

    #[test]
    fn long_listing_adds_size_and_last_use_on_digest_rows() {
        let mut entries = [entry("vm", Some("1"), "2", Some(false))];
        entries[0].size = Some(3 << 30);
        entries[0].last_used = Some(rfc3339(
            SystemTime::now() - std::time::Duration::from_secs(7300),
        ));
        let text = format_text(&entries, true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("STATE\tSIZE \tLAST USED"), "{text}");
        assert!(lines[1].ends_with("stopped\t3 GiB\t2 hours ago"), "{text}");
        assert!(
            lines[2].ends_with("   \"   "),
            "tag rows stay as they were: {text}"
        );
        assert_eq!(
            format_text(&[], true),
            "SOURCE\tNAME \tIMAGE ID\tSTATE\tSIZE\tLAST USED\n"
        );
    }

    fn entry(name: &str, tag: Option<&str>, id: &str, state: Option<bool>) -> ListEntry {
        ListEntry {
            source: "oci".into(),
            name: name.into(),
            tag: tag.map(Into::into),
            digest: format!("sha256:m{id}"),
            id: Some(format!("sha256:{id}")),
            state,
            size: Some(7),
            last_used: None,
        }
    }

    #[test]
    fn empty_listing_is_the_header_only() {
        assert_eq!(format_text(&[], false), "SOURCE\tNAME \tIMAGE ID\tSTATE\n");
    }

    #[test]
    fn one_digest_row_per_id_then_one_row_per_tag() {
        let entries = [
            entry("vm", Some("b"), "2", Some(true)),
            entry("vm", Some("a"), "2", Some(true)),
            entry("other", None, "1", None),
        ];
        let text = format_text(&entries, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].starts_with("oci   \tother@sha256:m1"), "{text}");
        assert!(lines[1].ends_with("missing"), "{text}");
        assert!(
            lines[2].contains("vm@sha256:m2") && lines[2].contains("running"),
            "{text}"
        );
        assert!(
            lines[3].contains("vm:a") && lines[3].ends_with("   \"   "),
            "{text}"
        );
        assert!(lines[4].contains("vm:b"), "{text}");
    }

    #[test]
    fn json_keys_are_those_of_sardinecake() {
        let json = serde_json::to_string(&entry("vm", None, "1", Some(false))).unwrap();
        assert_eq!(
            json,
            r#"{"source":"oci","name":"vm","tag":null,"digest":"sha256:m1","id":"sha256:1","state":false,"size":7,"last_used":null}"#
        );
    }
}
