//! OCI: image references, the local image-layout store, a streaming registry client, registry credentials.
//!
//! * [`reference`]: parsing and validating `host:port/repo/name:tag@sha256:hex` references.
//! * [`media_types`]: the media type and annotation strings shared with sardinecake 0.4.2 and OCI tools.
//! * [`manifest`]: lenient serde types for descriptors, image manifests and `index.json`.
//! * [`layout`]: the local store, one OCI image layout per repository under the ocidir.
//! * [`lock`]: advisory file locks that die with their process.

pub mod credentials;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod media_types;
pub mod reference;
pub mod registries;
pub mod registry;
pub mod transfer;

pub use sardine_disk::{Digest, InvalidDigest};
