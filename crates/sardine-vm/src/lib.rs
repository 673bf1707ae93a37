//! Images of VMs: export, import, clone, list and remove, over the OCI store, disks and libvirt.
//!
//! This crate composes the others: [`sardine_oci`] stores blobs and tags, [`sardine_disk`]
//! packs and unpacks files, [`sardine_libvirt`] reads, checks and defines domains. The
//! binaries (`sarde`, the GitLab executor) call the functions here and nothing below them.

pub mod clone;
mod error;
pub mod export;
pub mod format;
pub mod import;
pub mod inspect;
pub mod list;
mod paths;
pub mod power;
mod progress;
pub mod prune;
pub mod remove;
pub mod tag;
pub mod vmconfig;

pub use error::ImageError;
pub use progress::{NoProgress, Progress};
