//! How long operations report their progress (the CLI draws bars; libraries only count).

use sardine_oci::transfer::TransferProgress;

/// Receives progress of one long operation: a total, then increments.
pub trait Progress: Sync {
    /// A new phase (`what`, e.g. "exporting disk.qcow2") of `total` bytes begins.
    fn start(&self, what: &str, total: u64);
    /// `bytes` more are done.
    fn advance(&self, bytes: u64);
    /// The phase is over.
    fn finish(&self);
}

/// Receives progress of a fetch or push: one phase ([`Progress`]) whose total grows blob by
/// blob ([`TransferProgress`]).
pub trait RegistryProgress: Progress + TransferProgress {}

impl<T: Progress + TransferProgress> RegistryProgress for T {}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

impl TransferProgress for NoProgress {
    fn start_blob(&self, _digest: &sardine_oci::Digest, _size: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish_blob(&self, _digest: &sardine_oci::Digest, _skipped: bool) {}
}
