//! Disk packing: fixed-size zstd chunks, sparse files, qcow2 backing chains, the legacy gzip format.
//!
//! * [`chunked`]: the default format of `sarde export`: a disk file cut into fixed-size chunks, each one
//!   an independent zstd blob, packed and unpacked in parallel, holes kept.
//! * [`legacy`]: sardinecake 0.4.2's format: one gzip member per file, its compressed stream cut into pieces.
//! * [`names`]: the safe names of an image's files (never a QEMU protocol, path or option).
//! * [`qcow2`]: qcow2 headers and backing chains, read without `qemu-img`; overlay creation with it.
//! * [`sparse`]: holes: finding data segments, sparse writes, zero detection.
//!
//! Blobs go into a store through the [`BlobSink`] trait, which the OCI store crate implements.

mod blob;
pub mod chunked;
mod digest;
mod error;
pub mod legacy;
pub mod names;
pub mod qcow2;
pub mod sparse;

pub use digest::{Digest, InvalidDigest, sha256_hex};
pub use error::DiskError;

/// Where packed blobs go (implemented by the OCI store crate).
pub trait BlobSink: Sync {
    /// Directory for temporary files, on the same filesystem as the store (so a rename is atomic).
    fn temp_dir(&self) -> &std::path::Path;
    /// Whether the store already holds this blob; if so the packer drops its temp file.
    fn contains(&self, digest: &Digest) -> bool;
    /// Takes ownership of a finished, fsynced temp file whose sha256 is `digest`, moving it into the store.
    fn commit(&self, temp: &std::path::Path, digest: &Digest, size: u64) -> std::io::Result<()>;
    /// A blob an earlier export stored that is said to hold exactly the `length` bytes whose sha256
    /// is `digest`. The packer checks that claim (the blob's own digest, and that it decompresses to
    /// the chunk's bytes) before it uses the blob instead of compressing the chunk again.
    fn known_chunk(&self, _digest: &Digest, _length: u64) -> Option<KnownBlob> {
        None
    }
    /// Makes `blob`, which the store holds elsewhere, part of this sink; whether it could.
    fn adopt(&self, _blob: &KnownBlob) -> std::io::Result<bool> {
        Ok(false)
    }
}

/// A blob of the store that [`BlobSink::known_chunk`] offers for reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Where to read it.
    pub path: std::path::PathBuf,
}
