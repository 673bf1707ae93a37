//! `sarde list`: the images of the local store and whether their VM is imported and running.
//!
//! The JSON output has sardinecake 0.4.2's keys (`source`, `name`, `tag`, `digest`, `id`,
//! `state` with true = running, false = stopped, null = missing), and the text output its
//! layout. Unlike 0.4.2, one libvirt connection serves the whole listing, and a broken entry
//! is listed with what can be read instead of crashing the command.

use serde::Serialize;

use sardine_libvirt::{Libvirt, VmState};
use sardine_oci::layout::Store;

use crate::error::ImageError;

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
}

/// Lists the local images, with the state of the VM named after each image ID.
pub fn list(store: &Store, connect: Option<&str>) -> Result<Vec<ListEntry>, ImageError> {
    let images = store.list()?;
    let libvirt = if images.is_empty() { None } else { Libvirt::open_read_only(connect).ok() };
    let mut entries = Vec::with_capacity(images.len());
    for image in images {
        let state = match (&libvirt, &image.id) {
            (Some(libvirt), Some(id)) => state_of(libvirt, id),
            _ => None,
        };
        entries.push(ListEntry {
            source: "oci".into(),
            name: image.name,
            tag: image.tag,
            digest: image.digest,
            id: image.id,
            state,
        });
    }
    Ok(entries)
}

fn state_of(libvirt: &Libvirt, name: &str) -> Option<bool> {
    let vm = libvirt.lookup(name).ok()??;
    Some(matches!(vm.state().ok()?, VmState::Running | VmState::Paused))
}

/// The text table of sardinecake 0.4.2: `SOURCE`, `NAME`, `IMAGE ID`, `STATE`, TAB-separated.
///
/// Rows are sorted by (id, name, tag); each image ID gets one `name@digest` row with its
/// state, then one `name:tag` row per tag with the state shown as `   "   `.
pub fn format_text(entries: &[ListEntry]) -> String {
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
        values.into_iter().chain([title.len(), key]).max().unwrap_or(0)
    };
    let fs_source = width("SOURCE", "source", entries.iter().map(|e| e.source.len()).collect());
    let fs_name = width("NAME", "name", entries.iter().map(|e| e.name.len()).collect());
    let fs_tag = width("", "tag", entries.iter().map(|e| text(&e.tag).len()).collect());
    let fs_digest = width("", "digest", entries.iter().map(|e| e.digest.len()).collect());
    let fs_id = width("IMAGE ID", "id", entries.iter().map(|e| text(&e.id).len()).collect());
    let fs_state = width("STATE", "state", entries.iter().map(|e| e.state.map_or(4, |s| if s { 4 } else { 5 })).collect());
    let name_width = fs_tag.max(fs_digest) + fs_name + 1;
    let row = |source: &str, name: &str, id: &str, state: &str| {
        format!("{source:<fs_source$}\t{name:<name_width$}\t{id:<fs_id$}\t{state:<fs_state$}\n")
    };
    let mut out = row("SOURCE", "NAME", "IMAGE ID", "STATE");
    let mut sorted: Vec<&ListEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        (text(&a.id), &a.name, a.tag.clone().unwrap_or_default()).cmp(&(text(&b.id), &b.name, b.tag.clone().unwrap_or_default()))
    });
    let mut last_id = None;
    for entry in &sorted {
        let id = text(&entry.id);
        if last_id.as_ref() != Some(&id) {
            out.push_str(&row(&entry.source, &format!("{}@{}", entry.name, entry.digest), &id, state_text(entry.state)));
            last_id = Some(id.clone());
        }
        if let Some(tag) = &entry.tag {
            out.push_str(&row(&entry.source, &format!("{}:{tag}", entry.name), &id, "   \"   "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, tag: Option<&str>, id: &str, state: Option<bool>) -> ListEntry {
        ListEntry {
            source: "oci".into(),
            name: name.into(),
            tag: tag.map(Into::into),
            digest: format!("sha256:m{id}"),
            id: Some(format!("sha256:{id}")),
            state,
        }
    }

    #[test]
    fn empty_listing_is_the_header_only() {
        assert_eq!(format_text(&[]), "SOURCE\tNAME \tIMAGE ID\tSTATE\n");
    }

    #[test]
    fn one_digest_row_per_id_then_one_row_per_tag() {
        let entries = [entry("vm", Some("b"), "2", Some(true)), entry("vm", Some("a"), "2", Some(true)), entry("other", None, "1", None)];
        let text = format_text(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].starts_with("oci   \tother@sha256:m1"), "{text}");
        assert!(lines[1].ends_with("missing"), "{text}");
        assert!(lines[2].contains("vm@sha256:m2") && lines[2].contains("running"), "{text}");
        assert!(lines[3].contains("vm:a") && lines[3].ends_with("   \"   "), "{text}");
        assert!(lines[4].contains("vm:b"), "{text}");
    }

    #[test]
    fn json_keys_are_those_of_sardinecake() {
        let json = serde_json::to_string(&entry("vm", None, "1", Some(false))).unwrap();
        assert_eq!(json, r#"{"source":"oci","name":"vm","tag":null,"digest":"sha256:m1","id":"sha256:1","state":false}"#);
    }
}
