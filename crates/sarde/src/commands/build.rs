//! `sarde build`: reads the build file, runs [`sardine_build::build`] and prints a line per
//! image (or, with `--format json`, an array): its name, reference, whether it was built or
//! came from the cache (in a dry run: would be built, and why), its image ID and the seconds
//! it took.

use std::io::Write as _;

use sardine_build::{BuildError, BuildOptions, ImageReport, Outcome};

use super::{image_failure, quiet, store, threads};
use crate::cli::{BuildArgs, OutputFormat};
use crate::exit_code;
use crate::progress::Reporter;
use crate::settings::Settings;

/// `sarde build`.
pub fn build(settings: &Settings, args: &BuildArgs) -> anyhow::Result<()> {
    let mut file = sardine_build::load(&args.file, &args.pkg_repo).map_err(failure)?;
    file.override_vm(args.domain_type.as_deref(), args.network.as_deref());
    let store = store(settings);
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| sardine_config::data_dir().join("build"));
    let progress = Reporter::new(quiet(settings));
    let access = super::registry::access(&args.registry, None);
    let reports = sardine_build::build(
        &file,
        &BuildOptions {
            images: &args.images,
            force_rebuild: args.force_rebuild,
            dry_run: args.dry_run,
            prefix: &args.prefix,
            tag: &args.image_tag,
            cache_dir: &cache_dir,
            store: &store,
            connect: super::connect(settings),
            access: &access,
            fetch_progress: std::sync::Arc::new(Reporter::new(quiet(settings))),
            source_date_epoch: sardine_vm::export::source_date_epoch(),
            verbose: settings.verbosity() > 0,
            threads: threads(),
            progress: &progress,
        },
    )
    .map_err(failure)?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            let list: Vec<_> = reports.iter().map(json).collect();
            writeln!(stdout, "{}", serde_json::to_string_pretty(&list)?)?;
        }
        OutputFormat::Text => {
            for report in &reports {
                writeln!(stdout, "{}", line(report))?;
            }
        }
    }
    Ok(())
}

fn outcome(report: &ImageReport) -> (&'static str, Option<&str>) {
    match &report.outcome {
        Outcome::Built => ("built", None),
        Outcome::Cached => ("cached", None),
        Outcome::WouldBuild(why) => ("would build", Some(why)),
    }
}

fn line(report: &ImageReport) -> String {
    let (what, why) = outcome(report);
    let mut text = format!("{}\t{}\t{what}", report.name, report.reference);
    if let Some(why) = why {
        text.push_str(&format!(" ({why})"));
    }
    if let Some(id) = &report.id {
        text.push_str(&format!("\t{id}\t{:.1}s", report.duration.as_secs_f64()));
    }
    text
}

fn json(report: &ImageReport) -> serde_json::Value {
    let (what, why) = outcome(report);
    serde_json::json!({
        "name": report.name,
        "reference": report.reference,
        "outcome": what,
        "reason": why,
        "id": report.id,
        "seconds": report.duration.as_secs_f64(),
    })
}

/// A build error with its exit status and hint.
fn failure(error: BuildError) -> anyhow::Error {
    let error = match error {
        BuildError::Image(inner) => return image_failure(*inner),
        other => other,
    };
    let code = match &error {
        BuildError::MissingParent { .. } | BuildError::NoSuchImage { .. } => exit_code::NOT_FOUND,
        BuildError::Syntax { .. }
        | BuildError::Invalid { .. }
        | BuildError::Duplicate { .. }
        | BuildError::Cycle { .. } => exit_code::USAGE,
        _ => exit_code::GENERAL,
    };
    let hint = error.hint();
    exit_code::failure(code, error, hint)
}
