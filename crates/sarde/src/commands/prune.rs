//! `sarde prune`: removes garbage, least recently used images, orphaned base VMs and the
//! leftovers of interrupted imports (see [`sardine_vm::prune`]), then prints one line per
//! removed thing and the space freed (or, with `--format json`, the whole report).

use std::io::Write;

use sardine_config::format_size;
use sardine_vm::prune::{PruneOptions, PruneReport};

use super::{connect, image_failure, store};
use crate::cli::{OutputFormat, PruneArgs};
use crate::settings::Settings;

/// `sarde prune`.
pub fn prune(settings: &Settings, args: &PruneArgs) -> anyhow::Result<()> {
    let store = store(settings);
    let report = sardine_vm::prune::prune(&PruneOptions {
        store: &store,
        connect: connect(settings),
        older_than: args.older_than,
        space_budget: args.space_budget,
        dry_run: args.dry_run,
    })
    .map_err(image_failure)?;
    if report.over_budget {
        tracing::warn!(
            "the store's images still take {}, over the budget: the rest is needed by clones{}",
            format_size(report.store_size),
            if args.older_than.is_some() {
                " or not old enough"
            } else {
                ""
            }
        );
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?,
        OutputFormat::Text => write!(stdout, "{}", format_text(&report))?,
    }
    Ok(())
}

/// One line per removed thing, then the total; "would remove" in a dry run.
fn format_text(report: &PruneReport) -> String {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut out = format!(
        "{verb} garbage: {} files, {}\n",
        report.garbage_files,
        format_size(report.garbage_freed)
    );
    for image in &report.images {
        let names = if image.tags.is_empty() {
            format!("{}@{}", image.name, image.digest)
        } else {
            image
                .tags
                .iter()
                .map(|tag| format!("{}:{tag}", image.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "{verb} image {names} (last used {}): {}\n",
            image.last_used,
            format_size(image.freed)
        ));
    }
    for vm in &report.vms {
        out.push_str(&format!(
            "{verb} VM {}: {}\n",
            vm.name,
            format_size(vm.freed)
        ));
    }
    for leftover in &report.leftovers {
        out.push_str(&format!(
            "{verb} interrupted import {}: {}\n",
            leftover.path.display(),
            format_size(leftover.freed)
        ));
    }
    let total = if report.dry_run {
        "would free"
    } else {
        "freed"
    };
    out.push_str(&format!("{total} {} in total\n", format_size(report.freed)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sardine_vm::Digest;
    use sardine_vm::prune::{PrunedImage, PrunedVm};

    /// A digest of 64 copies of the hex digit `c`.
    fn fake(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn report(dry_run: bool) -> PruneReport {
        PruneReport {
            dry_run,
            garbage_files: 3,
            garbage_freed: 2048,
            images: vec![
                PrunedImage {
                    name: "r/vm".into(),
                    tags: vec!["1".into(), "latest".into()],
                    digest: fake('a'),
                    id: fake('1'),
                    last_used: "2025-01-02T03:04:05Z".into(),
                    freed: 1 << 20,
                },
                PrunedImage {
                    name: "r/vm".into(),
                    tags: Vec::new(),
                    digest: fake('b'),
                    id: fake('2'),
                    last_used: "2025-01-03T03:04:05Z".into(),
                    freed: 0,
                },
            ],
            vms: vec![PrunedVm {
                name: "sha256:i".into(),
                directory: None,
                freed: 512,
            }],
            leftovers: Vec::new(),
            store_size: 0,
            over_budget: false,
            freed: 2048 + (1 << 20) + 512,
        }
    }

    #[test]
    fn text_lists_every_removal_and_the_total() {
        assert_eq!(
            format_text(&report(false)),
            format!(
                "removed garbage: 3 files, 2 KiB\n\
                 removed image r/vm:1, r/vm:latest (last used 2025-01-02T03:04:05Z): 1 MiB\n\
                 removed image r/vm@{} (last used 2025-01-03T03:04:05Z): 0 B\n\
                 removed VM sha256:i: 512 B\n\
                 freed 1 MiB in total\n",
                fake('b')
            )
        );
        let dry = format_text(&report(true));
        assert!(
            dry.starts_with("would remove garbage") && dry.ends_with("would free 1 MiB in total\n"),
            "{dry}"
        );
    }
}
