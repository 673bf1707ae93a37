//! libvirt: domain XML model and sanitising, connections, lifecycle and guest addresses.
//!
//! * [`DomainXml`] (module `domain`): parse, query and rewrite domain definitions (export
//!   anonymisation, import renaming, clone backing chains).
//! * [`sanitize`]: the allow-list policy for domain XML that comes from an image.
//! * [`Libvirt`] and [`Vm`] (module `connection`): talk to the libvirt daemon.
//!
//! Import order: [`DomainXml::parse`] the image's XML, optionally [`DomainXml::anonymize`] it
//! (neutralises host state in images exported by sardinecake 0.4.2), [`sanitize::check`] it with
//! the image's plain file names, then `set_name`/`set_disk_source`/`set_boot_file` with absolute
//! paths, and define [`DomainXml::to_xml`] of that same value.

mod connection;
mod domain;
pub mod sanitize;
mod xml;

pub use connection::{AddressSource, Libvirt, LibvirtError, Vm, VmState, format_version};
pub use domain::{
    BootFile, BootFiles, Disk, DiskDevice, DiskKind, DomainError, DomainXml, ImageMetadata,
    Interface, MAX_DOMAIN_XML_BYTES,
};
pub use sanitize::Violation;
