//! Declarative VM inventories in vm-provisioner-libvirt's registry format, read unchanged:
//! [`load`] reads files, globs or stdin and merges them, [`model`] is the format with vmp's
//! strictness and defaults, [`resolve`] merges templates, resolves image tags and expands
//! variables as vmp does ([`format`]: Python's `str.format_map`; [`merge`]: vmp's strategic
//! merge). `sarde inventory config`, `list` and `image-url` print what these resolve.

mod error;
pub mod format;
pub mod load;
pub mod merge;
pub mod model;
pub mod resolve;

pub use error::InventoryError;
