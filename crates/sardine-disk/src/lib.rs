//! Disk packing: fixed-size zstd chunks, sparse files, qcow2 backing chains, the legacy gzip format.
//!
//! * [`chunked`]: the default format of `sarde export`: a disk file cut into fixed-size chunks, each one
//!   an independent zstd blob, packed and unpacked in parallel, holes kept.
//! * [`legacy`]: sardinecake 0.4.2's format: one gzip member per file, its compressed stream cut into pieces.
//! * [`qcow2`]: qcow2 headers and backing chains, read without `qemu-img`; overlay creation with it.
//! * [`sparse`]: holes: finding data segments, sparse writes, zero detection.
//!
//! Blobs go into a store through the [`BlobSink`] trait, which the OCI store crate implements.

mod blob;
pub mod chunked;
mod digest;
mod error;
pub mod legacy;
pub mod qcow2;
pub mod sparse;

pub use error::DiskError;

/// Where packed blobs go (implemented by the OCI store crate).
pub trait BlobSink: Sync {
    /// Directory for temporary files, on the same filesystem as the store (so a rename is atomic).
    fn temp_dir(&self) -> &std::path::Path;
    /// Whether the store already holds this blob (`sha256:<hex>`); if so the packer drops its temp file.
    fn contains(&self, digest: &str) -> bool;
    /// Takes ownership of a finished, fsynced temp file whose sha256 is `digest`, moving it into the store.
    fn commit(&self, temp: &std::path::Path, digest: &str, size: u64) -> std::io::Result<()>;
}
