//! `sarde inspect` and `sarde tag`: what an image of the store is, and another name for it.

use std::fmt::Write as _;
use std::io::Write as _;

use sardine_config::format_size;
use sardine_vm::inspect::Inspection;

use super::{image_failure, locate, reference, store};
use crate::cli::{InspectArgs, OutputFormat, TagArgs};
use crate::settings::Settings;

/// `sarde inspect`: the image's digests, platform, files and sizes, and its configurations.
pub fn inspect(settings: &Settings, args: &InspectArgs) -> anyhow::Result<()> {
    let (store, reference) = locate(settings, &args.container, args.raw.raw)?;
    let inspection =
        sardine_vm::inspect::inspect_local(&store, &reference).map_err(image_failure)?;
    let text = match args.format {
        OutputFormat::Json => serde_json::to_string_pretty(&inspection)? + "\n",
        OutputFormat::Text => format_inspection(&inspection),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

/// `sarde tag`: prints the new reference.
pub fn tag(settings: &Settings, args: &TagArgs) -> anyhow::Result<()> {
    let tagged = sardine_vm::tag::tag(
        &store(settings),
        &reference(&args.source)?,
        &reference(&args.target)?,
    )
    .map_err(image_failure)?;
    writeln!(std::io::stdout(), "{}", tagged.reference)?;
    Ok(())
}

/// The text form of `inspect`: one `key: value` line each, then the files as a table.
fn format_inspection(image: &Inspection) -> String {
    let platform = format!(
        "{}/{}",
        image.os.as_deref().unwrap_or("?"),
        image.architecture.as_deref().unwrap_or("?")
    );
    let unpacked = image
        .uncompressed_size
        .map_or_else(|| "unknown".to_owned(), format_size);
    let mut fields = vec![
        ("Reference", image.reference.clone()),
        ("Image ID", image.id.hex().to_owned()),
        ("Manifest digest", image.manifest_digest.to_string()),
        ("Format", image.format.to_owned()),
        ("Platform", platform),
        ("Layers", image.layers.to_string()),
        (
            "Size",
            format!(
                "{} compressed, {unpacked} unpacked",
                format_size(image.compressed_size)
            ),
        ),
    ];
    if let Some(created) = &image.created {
        let created = created
            .as_str()
            .map_or_else(|| created.to_string(), str::to_owned);
        fields.push(("Created", created));
    }
    if let Some(config) = &image.sardine_config {
        fields.push(("Users", listed(config, "users", &["username"])));
        fields.push((
            "Services",
            listed(config, "services", &["service", "port", "protocol"]),
        ));
    }
    let mut out = String::new();
    for (key, value) in fields {
        let _ = writeln!(out, "{:<16} {value}", format!("{key}:"));
    }
    out.push_str("Files:\n");
    out.push_str(&files_table(image));
    out
}

/// The entries of `config[key]`, each as its `fields` joined by spaces, comma-separated.
fn listed(config: &serde_json::Value, key: &str, fields: &[&str]) -> String {
    let entries: Vec<String> = config
        .get(key)
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .map(|entry| {
            let parts: Vec<String> = fields
                .iter()
                .filter_map(|f| entry.get(*f))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            parts.join(" ")
        })
        .collect();
    if entries.is_empty() {
        "-".to_owned()
    } else {
        entries.join(", ")
    }
}

/// The files as an indented table: name, role, size, compressed size, chunks.
fn files_table(image: &Inspection) -> String {
    let rows: Vec<[String; 5]> = image
        .files
        .iter()
        .map(|file| {
            [
                file.name.clone().unwrap_or_else(|| "?".to_owned()),
                file.role.clone(),
                file.size.map_or_else(|| "?".to_owned(), format_size),
                format_size(file.compressed_size),
                file.chunks.to_string(),
            ]
        })
        .collect();
    super::table::aligned(
        ["NAME", "ROLE", "SIZE", "COMPRESSED", "CHUNKS"],
        &rows,
        "  ",
        "  ",
    )
}
