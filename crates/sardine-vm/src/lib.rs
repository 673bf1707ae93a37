//! Images of VMs: export, import, clone, list, remove and prune them, fetch them from and push
//! them to registries, over the OCI store, disks and libvirt.
//!
//! This crate composes the others: [`sardine_oci`] stores blobs and tags and talks to
//! registries, [`sardine_disk`] packs and unpacks files, [`sardine_libvirt`] reads, checks and
//! defines domains. The binaries (`sarde`, the GitLab executor) call the functions here and
//! nothing below them: what they need of those crates' types is re-exported here.

pub mod clone;
mod error;
pub mod export;
pub mod fetch;
pub mod format;
pub mod import;
pub mod inspect;
pub mod list;
mod paths;
pub mod power;
mod progress;
pub mod prune;
pub mod push;
pub mod remote;
pub mod remove;
pub mod run;
pub mod store;
pub mod tag;
pub mod vmconfig;

pub use error::{ImageError, hint_of};
pub use progress::{NoProgress, Progress, RegistryProgress};

pub use sardine_libvirt::{
    AddressSource, BootFile, DomainXml, ImageMetadata, Libvirt, LibvirtError, Vm,
};
pub use sardine_oci::credentials::{self, CredentialsError};
pub use sardine_oci::layout::{Store, StoreError};
pub use sardine_oci::lock;
pub use sardine_oci::reference::Reference;
pub use sardine_oci::registry::{ClientOptions, Credentials, RegistryClient, RegistryError};
pub use sardine_oci::transfer::{FetchReport, PushReport, TransferError, TransferProgress};
pub use sardine_oci::{Digest, InvalidDigest};

/// The VM `name`, or [`ImageError::VmNotFound`].
pub(crate) fn find_vm(libvirt: &Libvirt, name: &str) -> Result<Vm, ImageError> {
    libvirt.lookup(name)?.ok_or_else(|| ImageError::VmNotFound {
        name: name.to_owned(),
    })
}
