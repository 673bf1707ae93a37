//! `sarde export`, `import`, `getconfig`, `clone` and `rm`: the local side.

use std::io::Write;

use sardine_vm::clone::{CloneMode, CloneOptions, ImageSource};
use sardine_vm::export::{DiskFormat, ExportOptions};
use sardine_vm::import::{ImportOptions, Imported};
use sardine_vm::store::LocalImage;
use sardine_vm::{Reference, Store};

use super::{connect, image_failure, locate, quiet, store, threads};
use crate::cli::{self, CloneArgs, ExportArgs, GetconfigArgs, ImportArgs, OutputFormat, RmArgs};
use crate::exit_code::{self, ResultExt};
use crate::progress::Reporter;
use crate::settings::Settings;

/// `sarde export`: prints the image ID as bare hex, as sardinecake 0.4.2 does.
pub fn export(settings: &Settings, args: &ExportArgs) -> anyhow::Result<()> {
    let (store, reference) = locate(settings, args.container(), args.raw.raw)?;
    let disk_format = match args.disk_format() {
        cli::DiskFormat::Chunked => DiskFormat::Chunked {
            chunk_size: args.chunksize,
        },
        cli::DiskFormat::Legacy => DiskFormat::Legacy {
            chunk_size: args.chunksize,
        },
    };
    let progress = Reporter::new(quiet(settings));
    let report = sardine_vm::export::export(&ExportOptions {
        vm: &args.name,
        reference: &reference,
        store: &store,
        // A domain XML file replaces libvirt, as in 0.4.2.
        connect: if args.libvirtconfig.is_some() {
            None
        } else {
            connect(settings)
        },
        domain_xml_file: args.libvirtconfig.as_deref(),
        vmconfig_file: args.vmconfig.as_deref(),
        disk_format,
        force: args.force,
        threads: threads(),
        created: sardine_vm::export::source_date_epoch(),
        progress: &progress,
    })
    .map_err(image_failure)?;
    let id = report.config_digest.trim_start_matches("sha256:");
    writeln!(std::io::stdout(), "{id}")?;
    Ok(())
}

/// `sarde import`: prints the VM's name (or UUID).
pub fn import(settings: &Settings, args: &ImportArgs) -> anyhow::Result<()> {
    let (store, reference) = locate(settings, &args.container, args.raw.raw)?;
    import_reference(settings, &store, &reference, &args.import, &args.auto_prune)
}

/// Imports `reference` from `store` and prints the VM's name or UUID.
fn import_reference(
    settings: &Settings,
    store: &Store,
    reference: &Reference,
    options: &cli::ImportOptions,
    auto_prune: &cli::AutoPruneArgs,
) -> anyhow::Result<()> {
    let progress = Reporter::new(quiet(settings));
    let import = import_options(settings, (store, reference), options, auto_prune, &progress);
    let imported = sardine_vm::import::import(&import).map_err(image_failure)?;
    print_imported(&imported, reference, options)
}

/// The options of an import of `reference` from `store` (also `pull`'s).
pub(crate) fn import_options<'a>(
    settings: &'a Settings,
    (store, reference): (&'a Store, &'a Reference),
    options: &'a cli::ImportOptions,
    auto_prune: &cli::AutoPruneArgs,
    progress: &'a Reporter,
) -> ImportOptions<'a> {
    ImportOptions {
        store,
        reference,
        name: options.name.as_deref(),
        vmdir: &options.vmdir.vmdir,
        connect: connect(settings),
        allow_unsafe_xml: options.unsafe_xml.allow_unsafe_xml,
        threads: threads(),
        auto_prune: auto_prune.keep_free_if_on(),
        max_disk_size: options.max_disk_size,
        progress,
    }
}

/// Prints the imported VM's name, its UUID (`--print-uuid`), or a JSON summary (`--format json`).
pub(crate) fn print_imported(
    imported: &Imported,
    reference: &Reference,
    options: &cli::ImportOptions,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match options.format {
        OutputFormat::Json => {
            let summary = serde_json::json!({
                "name": imported.name,
                "uuid": imported.uuid,
                "directory": imported.dir,
                "existed": imported.existed,
                "reference": reference.to_string(),
            });
            writeln!(stdout, "{}", serde_json::to_string_pretty(&summary)?)?;
        }
        OutputFormat::Text if options.print_uuid => writeln!(stdout, "{}", imported.uuid)?,
        OutputFormat::Text => writeln!(stdout, "{}", imported.name)?,
    }
    Ok(())
}

/// `sarde getconfig`: the image's sardine config as JSON (`{}`-less: nothing when it has none).
pub fn getconfig(settings: &Settings, args: &GetconfigArgs) -> anyhow::Result<()> {
    let (store, reference) = locate(settings, &args.container, args.raw.raw)?;
    let image = LocalImage::open(&store, &reference).map_err(image_failure)?;
    if let Some(config) = image.vmconfig().map_err(image_failure)? {
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(config.document())?
        )?;
    }
    Ok(())
}

/// `sarde clone`: prints the clone's name.
pub fn clone(settings: &Settings, args: &CloneArgs) -> anyhow::Result<()> {
    let store = store(settings);
    let progress = Reporter::new(quiet(settings));
    let mode = match (args.ephemeral, args.start) {
        (true, _) => CloneMode::Ephemeral,
        (false, true) => CloneMode::Start,
        (false, false) => CloneMode::Define,
    };
    let cloned = sardine_vm::clone::clone(&CloneOptions {
        owner: None,
        max_memory_mib: None,
        max_vcpus: None,
        network: None,
        source: &args.container,
        target: &args.target,
        clonedir: &args.vmdir.vmdir,
        connect: connect(settings),
        mode,
        image: Some(ImageSource {
            store: &store,
            vmdir: &args.vmdir.vmdir,
            threads: threads(),
            progress: &progress,
        }),
        allow_unsafe_xml: args.unsafe_xml.allow_unsafe_xml,
        memory_mib: args.memory,
        vcpus: args.cpus,
        overrides: &sardine_vm::clone::Overrides::default(),
    })
    .map_err(image_failure)?;
    writeln!(std::io::stdout(), "{}", cloned.name)?;
    Ok(())
}

/// `sarde rm`: images (tags) and VMs. Without --vm/--image, a name that is an image in the
/// store is removed as an image, otherwise as a VM.
pub fn rm(settings: &Settings, args: &RmArgs) -> anyhow::Result<()> {
    let store = store(settings);
    for name in &args.names {
        if !args.vm {
            let reference = Reference::parse(name);
            if let Ok(reference) = reference
                && sardine_vm::remove::remove_image(&store, &reference).map_err(image_failure)?
            {
                tracing::info!("removed image {reference}");
                continue;
            }
            if args.image {
                return Err(anyhow::anyhow!(
                    "image {name} not found in {}",
                    store.root().display()
                ))
                .exit_code(exit_code::NOT_FOUND);
            }
        }
        sardine_vm::remove::remove_vm(connect(settings), name, args.force)
            .map_err(image_failure)?;
    }
    Ok(())
}
