//! The subcommands of sarde: [`dispatch`] runs the one the command line chose.
//!
//! One module per area: `local` (export, import, getconfig, clone, rm), `list`, `images`
//! (inspect, tag), `prune`, `registry` (login, logout, fetch, push, pull), `guest` (ip, ssh), `build`
//! (images from a build file), `inventory` (vmp's registries), `run` (fire-once VMs) and `power` (start, stop). Library errors become exit statuses and hints here ([`image_failure`]).

mod build;
mod guest;
mod images;
mod inventory;
mod list;
mod local;
mod power;
mod prune;
mod registry;
mod run;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sardine_vm::{
    CredentialsError, ImageError, Reference, RegistryError, Store, StoreError, TransferError,
};

use crate::cli::Command;
use crate::exit_code::{self, Failure};
use crate::settings::Settings;

/// Runs the subcommand of `settings` and returns the exit status.
pub fn dispatch(settings: &Settings) -> anyhow::Result<ExitCode> {
    match &settings.cli.command {
        // Only these hold stdout's lock: `ssh` writes to stdout from other threads.
        Command::Completions(args) => {
            crate::generate::completions(args, &mut std::io::stdout().lock())?
        }
        Command::Man(args) => crate::generate::man(args, &mut std::io::stdout().lock())?,
        Command::Login(args) => registry::login(settings, args)?,
        Command::Logout(args) => registry::logout(settings, args)?,
        Command::Fetch(args) => registry::fetch(settings, args)?,
        Command::Push(args) => registry::push(settings, args)?,
        Command::Pull(args) => registry::pull(settings, args)?,
        Command::Export(args) => local::export(settings, args)?,
        Command::Import(args) => local::import(settings, args)?,
        Command::List(args) => list::list(settings, args)?,
        Command::Getconfig(args) => local::getconfig(settings, args)?,
        Command::Inspect(args) => images::inspect(settings, args)?,
        Command::Tag(args) => images::tag(settings, args)?,
        Command::Start(args) => power::start(settings, args)?,
        Command::Stop(args) => power::stop(settings, args)?,
        Command::Clone(args) => local::clone(settings, args)?,
        Command::Rm(args) => local::rm(settings, args)?,
        Command::Prune(args) => prune::prune(settings, args)?,
        Command::Ip(args) => guest::ip(settings, args)?,
        Command::Ssh(args) => return guest::ssh(settings, args),
        Command::Run(args) => return run::run(settings, args),
        Command::Build(args) => build::build(settings, args)?,
        Command::Inventory(args) => inventory::inventory(args)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The local store of `--ocidir`.
pub(crate) fn store(settings: &Settings) -> Store {
    Store::new(settings.cli.global.ocidir.clone())
}

/// The libvirt URI of `--connect`.
pub(crate) fn connect(settings: &Settings) -> Option<&str> {
    settings.cli.global.connect.as_deref()
}

/// Worker threads for packing and unpacking: every core.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Whether progress bars are off (`-q`).
pub(crate) fn quiet(settings: &Settings) -> bool {
    settings.verbosity() < 0
}

/// Parses an image reference given on the command line.
pub(crate) fn reference(text: &str) -> anyhow::Result<Reference> {
    Reference::parse(text)
        .map_err(|e| {
            Failure::new(
                exit_code::USAGE,
                anyhow::Error::new(e).context(format!("invalid image name {text:?}")),
            )
        })
        .map_err(|f| {
            anyhow::Error::new(f.with_hint(
                "image names look like registry.example.org/group/vm:tag or localhost:5000/vm:1",
            ))
        })
}

/// The store and the reference for CONTAINER: a name in `--ocidir`, or with `--raw` an OCI
/// layout directory (with an optional `:tag` or `@digest`).
pub(crate) fn locate(
    settings: &Settings,
    container: &str,
    raw: bool,
) -> anyhow::Result<(Store, Reference)> {
    if !raw {
        return Ok((store(settings), reference(container)?));
    }
    let split = container
        .rfind(['@', ':'])
        .filter(|&i| !container[i..].contains('/'));
    let (path, suffix) = match split {
        Some(i) => (&container[..i], &container[i..]),
        None => (container, ""),
    };
    let path = Path::new(path);
    let parent = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent
    };
    Ok((Store::new(parent), reference(&format!("{name}{suffix}"))?))
}

/// Turns an image error into a failure with the right exit status and hint.
pub(crate) fn image_failure(error: ImageError) -> anyhow::Error {
    let code = match &error {
        ImageError::ImageNotFound { .. } | ImageError::VmNotFound { .. } => exit_code::NOT_FOUND,
        ImageError::Malformed { .. } | ImageError::UnsafeFileName { .. } | ImageError::Disk(_) => {
            exit_code::INTEGRITY
        }
        ImageError::Store(e) if is_integrity(e) => exit_code::INTEGRITY,
        ImageError::Libvirt(_) => exit_code::LIBVIRT,
        ImageError::Registry(e) => registry::registry_code(e),
        ImageError::Transfer(e) => registry::transfer_code(e),
        _ => exit_code::GENERAL,
    };
    let hint = sarde_hint(&error);
    exit_code::failure(code, error, hint)
}

/// The hint for an image error in sarde's words (with its commands and flags), where the
/// library's own hint ([`ImageError::hint`]) names none.
fn sarde_hint(error: &ImageError) -> Option<String> {
    let hint = match error {
        ImageError::ImageNotFound { .. } => {
            "see `sarde list` for the local images, or `sarde fetch` it".to_owned()
        }
        ImageError::VmRunning { name } => {
            format!("shut it down first (`virsh shutdown '{name}'`), or pass --force")
        }
        ImageError::InUse { .. } => {
            "remove those VMs first, or pass --force to remove them too".to_owned()
        }
        ImageError::UnsafeDomain { .. } => {
            "if you trust this image, import it with --allow-unsafe-xml".to_owned()
        }
        ImageError::UnlocatedFiles { .. } => {
            "delete those files yourself, then `sarde rm --vm --force` (which only undefines it)"
                .to_owned()
        }
        ImageError::NoSpace { .. } => {
            "free some space (e.g. `sarde prune`) or choose another --vmdir".to_owned()
        }
        ImageError::ManifestTooLarge {
            fitting_chunk_size: Some(size),
            ..
        } => format!("export with --chunksize {}MiB (or more)", size >> 20),
        ImageError::Store(StoreError::TagNotFound { .. } | StoreError::DigestNotFound { .. }) => {
            "`sarde list` shows the local images".to_owned()
        }
        ImageError::Credentials {
            registry,
            source: CredentialsError::BadAuthEntry { .. },
        } => format!("run `sarde login {registry}` again"),
        ImageError::Transfer(TransferError::Registry {
            source: RegistryError::NotFound { .. },
            ..
        }) => "check the repository and tag; private images need `sarde login` first".to_owned(),
        ImageError::Registry(RegistryError::Unauthorized { registry, .. })
        | ImageError::Transfer(TransferError::Registry {
            source: RegistryError::Unauthorized { registry, .. },
            ..
        }) => registry::unauthorized_hint(registry),
        _ => return None,
    };
    Some(hint)
}

/// Whether a store error is about damaged or mismatching content, by its variant. (An image
/// index where an image was asked for counts as one, as it always has.)
fn is_integrity(error: &StoreError) -> bool {
    matches!(error, StoreError::IsIndex { .. }) || error.is_integrity()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_is_decided_by_the_variant() {
        let mismatch = StoreError::DigestMismatch {
            path: "/b".into(),
            expected: sardine_vm::Digest::of(b"a"),
            actual: sardine_vm::Digest::of(b"b"),
        };
        assert_eq!(
            exit_code::code_of(&image_failure(ImageError::Store(mismatch))),
            exit_code::INTEGRITY
        );
        let size = StoreError::SizeMismatch {
            path: "/b".into(),
            expected: 1,
            actual: 2,
        };
        assert_eq!(
            exit_code::code_of(&image_failure(ImageError::Store(size))),
            exit_code::INTEGRITY
        );
        let missing = StoreError::BlobMissing {
            repo: "r".into(),
            digest: sardine_vm::Digest::of(b"a"),
        };
        assert_ne!(
            exit_code::code_of(&image_failure(ImageError::Store(missing))),
            exit_code::INTEGRITY
        );
    }

    #[test]
    fn an_image_error_has_one_hint_in_sardes_words() {
        let error = image_failure(ImageError::ImageNotFound {
            reference: "vm:1".into(),
            ocidir: "/o".into(),
            source: Some(StoreError::TagNotFound {
                repo: "vm".into(),
                tag: "1".into(),
            }),
        });
        let text = format!("{error:#}");
        assert!(!text.contains("hint"), "{text}");
        assert_eq!(exit_code::code_of(&error), exit_code::NOT_FOUND);
        assert_eq!(
            exit_code::hint_of(&error),
            Some("see `sarde list` for the local images, or `sarde fetch` it")
        );
    }
}
