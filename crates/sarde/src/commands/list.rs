//! `sarde list` and `sarde list --vms`: the listings of [`sardine_vm::list`], printed as JSON
//! or as text tables (the image table byte for byte sardinecake 0.4.2's, which scripts parse).

use std::io::Write;
use std::time::SystemTime;

use sardine_config::format_size;
use sardine_vm::list::{ListEntry, VmEntry};

use super::{connect, image_failure, store};
use crate::cli::{ListArgs, OutputFormat};
use crate::settings::Settings;

/// `sarde list`.
pub fn list(settings: &Settings, args: &ListArgs) -> anyhow::Result<()> {
    if args.vms {
        return list_vms(settings, args);
    }
    let store = store(settings);
    let root = store.root();
    tracing::info!(
        "images in {}",
        std::path::absolute(root)
            .unwrap_or_else(|_| root.to_path_buf())
            .display()
    );
    let entries = sardine_vm::list::list(&store, connect(settings)).map_err(image_failure)?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&entries)?)?,
        OutputFormat::Text => write!(stdout, "{}", format_text(&entries, args.long))?,
    }
    Ok(())
}

/// `sarde list --vms`: the VMs imported or cloned from images.
fn list_vms(settings: &Settings, args: &ListArgs) -> anyhow::Result<()> {
    let vms = sardine_vm::list::list_vms(connect(settings)).map_err(image_failure)?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&vms)?)?,
        OutputFormat::Text => write!(stdout, "{}", format_vms_text(&vms))?,
    }
    Ok(())
}

/// The `list --vms` table: NAME, STATE, BASE, DISK USAGE, IMAGE, TAB-separated.
fn format_vms_text(vms: &[VmEntry]) -> String {
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
                vm.disk_usage.map_or_else(|| "-".into(), format_size),
                vm.image.clone(),
            ]
        })
        .collect();
    super::table::aligned(
        ["NAME", "STATE", "BASE", "DISK USAGE", "IMAGE"],
        &rows,
        "",
        "\t",
    )
}

/// The text table of sardinecake 0.4.2: `SOURCE`, `NAME`, `IMAGE ID`, `STATE`, TAB-separated.
///
/// Rows are sorted by (id, name, tag); each image ID gets one `name@digest` row with its
/// state, then one `name:tag` row per tag with the state shown as `   "   `.
///
/// `long` (`sarde list -l`) adds two columns, `SIZE` (as stored) and `LAST USED` (how long
/// ago), on the `name@digest` rows; without it the text is byte for byte 0.4.2's, which
/// scripts parse.
fn format_text(entries: &[ListEntry], long: bool) -> String {
    fn text(value: &Option<impl ToString>) -> String {
        value
            .as_ref()
            .map_or_else(|| "None".into(), ToString::to_string)
    }
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
    use sardine_vm::Digest;
    use sardine_vm::list::rfc3339;

    /// A digest made of the hex digits `label`, repeated.
    fn fake(label: &str) -> Digest {
        Digest::parse(&format!("sha256:{}", label.repeat(64 / label.len()))).unwrap()
    }

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
            digest: fake(&format!("e{id}")),
            id: Some(fake(id)),
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
        assert!(
            lines[1].starts_with(&format!("oci   \tother@{}", fake("e1"))),
            "{text}"
        );
        assert!(lines[1].ends_with("missing"), "{text}");
        assert!(
            lines[2].contains(&format!("vm@{}", fake("e2"))) && lines[2].contains("running"),
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
            format!(
                r#"{{"source":"oci","name":"vm","tag":null,"digest":"{}","id":"{}","state":false,"size":7,"last_used":null}}"#,
                fake("e1"),
                fake("1")
            )
        );
    }
}
