//! Errors of the local image store.

use std::io;
use std::path::PathBuf;

use crate::reference::ReferenceError;

/// What went wrong in the local OCI store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A repository name, tag or digest is not acceptable.
    #[error("invalid image reference")]
    InvalidReference(#[from] ReferenceError),
    /// A digest is not `sha256:<64 lowercase hex>` (the only algorithm the store holds).
    #[error(transparent)]
    InvalidDigest(#[from] crate::InvalidDigest),
    /// A file system operation failed.
    #[error("{context}")]
    Io {
        /// What we were doing, naming the file or image.
        context: String,
        /// The underlying error (from fs-err, so it names the path).
        #[source]
        source: io::Error,
    },
    /// The repository directory has no `index.json` (or no `oci-layout`).
    #[error("no image `{name}` in {}", path.display())]
    NoSuchRepo {
        /// The repository name.
        name: String,
        /// Its directory.
        path: PathBuf,
    },
    /// A JSON file of the layout cannot be parsed.
    #[error("cannot parse {}", path.display())]
    BadJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A blob that a manifest or index refers to is not in the repository.
    #[error("blob {digest} of image `{repo}` is missing")]
    BlobMissing {
        /// The repository name.
        repo: String,
        /// The missing blob.
        digest: crate::Digest,
    },
    /// A blob's content does not hash to its name.
    #[error("blob {} is corrupt: its content hashes to {actual}", path.display())]
    DigestMismatch {
        /// The blob file.
        path: PathBuf,
        /// The sha256 digest it should have.
        expected: crate::Digest,
        /// The sha256 digest it has.
        actual: crate::Digest,
    },
    /// A blob's size differs from its descriptor's.
    #[error("blob {} has {actual} bytes but its descriptor says {expected}", path.display())]
    SizeMismatch {
        /// The blob file.
        path: PathBuf,
        /// The size from the descriptor.
        expected: u64,
        /// The actual size.
        actual: u64,
    },
    /// A blob is larger than allowed for its kind (manifests, configs).
    #[error("blob {} is larger than the {max} bytes allowed for it", path.display())]
    TooLarge {
        /// The blob file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// No `index.json` entry carries the tag.
    #[error("image `{repo}` has no tag `{tag}`")]
    TagNotFound {
        /// The repository name.
        repo: String,
        /// The tag.
        tag: String,
    },
    /// No `index.json` entry has the digest.
    #[error("image `{repo}` has no manifest {digest}")]
    DigestNotFound {
        /// The repository name.
        repo: String,
        /// The manifest digest.
        digest: String,
    },
    /// `index.json` lists no usable manifest.
    #[error("image `{repo}` has no manifests")]
    EmptyRepo {
        /// The repository name.
        repo: String,
    },
    /// The selected entry is an image index, not a single manifest.
    #[error(
        "{digest} in `{repo}` is an image index (a multi-platform list), not a single VM image"
    )]
    IsIndex {
        /// The repository name.
        repo: String,
        /// The index digest.
        digest: crate::Digest,
    },
    /// A manifest blob is not a valid image manifest.
    #[error("manifest {digest} of image `{repo}` is not a valid image manifest")]
    BadManifest {
        /// The repository name.
        repo: String,
        /// The manifest digest.
        digest: crate::Digest,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Taking a lock failed (not: had to wait).
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            StoreError::NoSuchRepo { .. } => Some("fetch, pull or export it first"),
            StoreError::BadJson { .. } => Some("the file is damaged, fetch the image again"),
            StoreError::BlobMissing { .. } | StoreError::SizeMismatch { .. } => {
                Some("fetch the image again")
            }
            StoreError::DigestMismatch { .. } => Some("remove it and fetch the image again"),
            StoreError::TagNotFound { .. } | StoreError::DigestNotFound { .. } => {
                Some("the listing of the local images shows their tags and digests")
            }
            StoreError::IsIndex { .. } => Some("refer to one of its manifests by digest"),
            _ => None,
        }
    }

    /// Whether the store's content is not what its digests and descriptors say (corruption or
    /// tampering), as opposed to a missing name or a failing disk.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            StoreError::DigestMismatch { .. }
                | StoreError::SizeMismatch { .. }
                | StoreError::TooLarge { .. }
                | StoreError::BadManifest { .. }
        )
    }
}

/// Attaches a context message to I/O results.
pub(crate) trait IoContext<T> {
    /// Wraps an I/O error into [`StoreError::Io`] with the message `context()`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for Result<T, io::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            context: context(),
            source,
        })
    }
}
