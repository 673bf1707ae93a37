//! `sarde build`: VM images from a declarative file, made without booting.
//!
//! A build file ([`yaml`], sarde's own; or little-vm-helper's `images.json`, [`lvh`]) describes
//! images ([`spec`]): root images made by `mmdebstrap` and turned into a file system offline
//! ([`disk`]), and images derived from a parent as qcow2 overlays on its disk, changed offline
//! through a FUSE export and a loop mount ([`disk::Mounted`]) in a chroot ([`chroot`],
//! [`actions`]). Each carries its kernel, initrd, domain definition and VM config
//! ([`output`]). Steps that need the image booted run over SSH in a transient VM of it
//! ([`steps`]). [`build`] orders them ([`plan`]), reuses what the cache has ([`cache`]), and
//! exports the rest into the local store with `sardine-vm`'s export, so that `sarde push`,
//! `clone`, `run` and the executor take them as any other image.

pub mod actions;
pub mod build;
pub mod cache;
pub mod chroot;
pub mod disk;
mod error;
pub mod lvh;
pub mod output;
pub mod plan;
pub mod spec;
pub mod steps;
pub mod tool;
pub mod yaml;

use std::path::Path;

pub use build::{BuildOptions, ImageReport, Outcome, build};
pub use error::BuildError;
pub use spec::BuildFile;

/// Reads a build file: little-vm-helper's `images.json` (a JSON list) or sarde's YAML.
/// `suite` is the Debian suite of lvh's root images (its `--pkg-repo`); relative host paths of
/// an lvh file are relative to the working directory, as in lvh.
pub fn load(path: &Path, suite: &str) -> Result<BuildFile, BuildError> {
    let text = fs_err::read_to_string(path).map_err(|e| BuildError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source: e,
    })?;
    if text.trim_start().starts_with('[') {
        let cwd = std::env::current_dir().map_err(BuildError::io("reading", "."))?;
        lvh::parse(&text, path, suite, &cwd)
    } else {
        yaml::parse(&text, path)
    }
}
