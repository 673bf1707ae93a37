//! The error type of this crate: what failed, on which file, and what to do about it.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while packing, unpacking or inspecting disk files.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Reading, writing or creating a file failed.
    #[error("could not {action} '{}'", path.display())]
    Io {
        /// What was being done, e.g. "read" or "create".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing a blob into the store failed.
    #[error("could not store a blob in the image store (temporary directory '{}')", temp_dir.display())]
    Store {
        /// The store's temporary directory.
        temp_dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The options given to the packer make no sense.
    #[error("invalid packing options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// The chunk list of a file leaves gaps, overlaps or runs past the end of the file.
    #[error("the chunk list for '{}' does not cover the file exactly: {reason}; the image manifest is broken", target.display())]
    ChunkTiling {
        /// The file that was to be written.
        target: PathBuf,
        /// What is wrong with the list.
        reason: String,
    },
    /// A blob's size differs from the one its descriptor promises.
    #[error("blob '{}' has {actual} bytes, expected {expected}: the blob is damaged; remove it and fetch the image again", blob.display())]
    BlobSizeMismatch {
        /// The blob file.
        blob: PathBuf,
        /// The size in the descriptor.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A blob's sha256 differs from its digest.
    #[error("blob '{}' has digest {actual}, expected {expected}: the blob is damaged; remove it and fetch the image again", blob.display())]
    BlobDigestMismatch {
        /// The blob file.
        blob: PathBuf,
        /// The digest in the descriptor.
        expected: crate::Digest,
        /// The digest found.
        actual: crate::Digest,
    },
    /// The compressor failed.
    #[error("could not compress '{}' at offset {offset}", path.display())]
    Compress {
        /// The file being packed.
        path: PathBuf,
        /// Where in the file it failed.
        offset: u64,
        /// The compressor's error.
        #[source]
        source: io::Error,
    },
    /// A chunk blob is not a valid zstd stream.
    #[error("could not decompress chunk blob '{}': it is not valid zstd data; remove it and fetch the image again", blob.display())]
    Decompress {
        /// The blob file.
        blob: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// A chunk decompressed to a different number of bytes than its descriptor says.
    #[error("chunk at offset {offset} of '{}' decompressed to {actual} bytes, expected {expected}: the image is damaged", target.display())]
    ChunkLength {
        /// The file being written.
        target: PathBuf,
        /// The chunk's offset in that file.
        offset: u64,
        /// The length in the descriptor.
        expected: u64,
        /// What was found ("more than" the expected length is reported as `expected + 1`).
        actual: u64,
    },
    /// A chunk's uncompressed sha256 differs from its descriptor.
    #[error("chunk at offset {offset} of '{}' has digest {actual}, expected {expected}: the image is damaged", target.display())]
    ChunkDigestMismatch {
        /// The file being written.
        target: PathBuf,
        /// The chunk's offset in that file.
        offset: u64,
        /// The digest in the descriptor.
        expected: crate::Digest,
        /// The digest found.
        actual: crate::Digest,
    },
    /// A gzip header is malformed or hostile.
    #[error("invalid gzip header: {reason}")]
    GzipHeader {
        /// What is wrong.
        reason: String,
    },
    /// A legacy gzip stream is damaged (bad data, checksum, size, truncation or trailing data).
    #[error("legacy disk layer starting with blob '{}' is damaged: {reason}; the image cannot be imported", first_piece.display())]
    GzipStream {
        /// The first blob of the stream.
        first_piece: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A legacy gzip file decompresses to more than its bound allows (a decompression bomb, or a
    /// disk larger than this host takes).
    #[error(
        "legacy disk file '{name}' is larger than {limit} bytes, the limit set by {bound}, and was not unpacked"
    )]
    LegacyFileTooLarge {
        /// The file's name in the image.
        name: String,
        /// The bound in bytes.
        limit: u64,
        /// Where the bound comes from.
        bound: String,
    },
    /// A file name of an image is not made of the safe characters ([`crate::names`]): it could
    /// escape the target directory, hide the file, or be read by QEMU as a protocol or option.
    #[error(
        "refusing the disk file name \"{name}\": it must be a plain file name of letters, digits, '.', '_', '+' and '-', not starting with '.' or '-', of at most 255 bytes"
    )]
    UnsafeFileName {
        /// The name from the image.
        name: String,
    },
    /// A qcow2 header is malformed.
    #[error("invalid qcow2 header: {reason}")]
    Qcow2Header {
        /// What is wrong.
        reason: String,
    },
    /// A qcow2 image file has a malformed header.
    #[error("'{}' is not a usable qcow2 image: {reason}", path.display())]
    Qcow2Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A disk image would make QEMU open something other than a checked file: a protocol, a
    /// format other than qcow2 or raw, a file of another format than declared, an external data
    /// file, a device.
    #[error("disk image '{}' is refused: {reason}", path.display())]
    UnsafeImage {
        /// The image.
        path: PathBuf,
        /// What it asks for.
        reason: String,
    },
    /// A backing file named in a qcow2 image does not exist.
    #[error("backing file '{backing}' of image '{}' not found at '{}': restore it or rebase the image with 'qemu-img rebase'", image.display(), resolved.display())]
    BackingFileMissing {
        /// The image that names the backing file.
        image: PathBuf,
        /// The name as stored in the image.
        backing: String,
        /// Where it was looked for.
        resolved: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A backing chain refers back to one of its own images.
    #[error("the backing chain of '{}' loops back to '{}'", top.display(), repeated.display())]
    BackingChainLoop {
        /// The top image.
        top: PathBuf,
        /// The image seen twice.
        repeated: PathBuf,
    },
    /// A backing chain is longer than the limit.
    #[error("the backing chain of '{}' is longer than {limit} images", top.display())]
    BackingChainTooDeep {
        /// The top image.
        top: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// `qemu-img` could not be started.
    #[error("could not run qemu-img (is qemu-utils installed?)")]
    QemuImgSpawn {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `qemu-img` failed.
    #[error("qemu-img could not create overlay '{}' ({status}): {stderr}", overlay.display())]
    QemuImgFailed {
        /// The overlay that was to be created.
        overlay: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
}

impl DiskError {
    /// Builds a closure that wraps an I/O error with the action and the file it concerned.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> DiskError {
        let path = path.into();
        move |source| DiskError::Io {
            action,
            path,
            source,
        }
    }
}
