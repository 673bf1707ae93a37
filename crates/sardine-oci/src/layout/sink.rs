//! [`sardine_disk::BlobSink`] for a repository: lets the disk packer write chunks straight into
//! the store.

use std::io;
use std::path::{Path, PathBuf};

use super::{Repo, StoreError};
use crate::Digest;

/// Commits blobs produced by `sardine-disk` into a [`Repo`].
#[derive(Debug, Clone)]
pub struct RepoSink {
    repo: Repo,
    temp_dir: PathBuf,
}

impl RepoSink {
    /// A sink for `repo`, creating the store's temp directory.
    pub fn new(repo: &Repo) -> Result<RepoSink, StoreError> {
        Ok(RepoSink {
            repo: repo.clone(),
            temp_dir: repo.store().temp_dir()?,
        })
    }
}

impl sardine_disk::BlobSink for RepoSink {
    fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.repo.has_blob(digest)
    }

    fn commit(&self, temp: &Path, digest: &Digest, size: u64) -> io::Result<()> {
        let actual = fs_err::metadata(temp)?.len();
        if actual != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has {actual} bytes, expected {size} for blob {digest}",
                    temp.display()
                ),
            ));
        }
        self.repo
            .commit_blob(temp, digest)
            .map_err(io::Error::other)
    }

    /// Links the blob from the store-wide pool (where every committed blob is).
    fn adopt(&self, blob: &sardine_disk::KnownBlob) -> io::Result<bool> {
        self.repo
            .link_pooled_blob(&blob.digest, blob.size)
            .map_err(io::Error::other)
    }
}
