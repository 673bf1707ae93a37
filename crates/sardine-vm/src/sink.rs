//! Packed blobs go straight into a repository of the local store.

use std::path::{Path, PathBuf};

use sardine_oci::layout::Repo;

/// A [`sardine_disk::BlobSink`] that commits blobs into one repository of the store.
pub struct RepoSink<'a> {
    repo: &'a Repo,
    temp_dir: PathBuf,
}

impl<'a> RepoSink<'a> {
    /// Blobs of `repo`, with temporary files in the store's temp directory.
    pub fn new(repo: &'a Repo, temp_dir: PathBuf) -> RepoSink<'a> {
        RepoSink { repo, temp_dir }
    }
}

impl sardine_disk::BlobSink for RepoSink<'_> {
    fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    fn contains(&self, digest: &str) -> bool {
        self.repo.has_blob(digest)
    }

    fn commit(&self, temp: &Path, digest: &str, _size: u64) -> std::io::Result<()> {
        self.repo.commit_blob(temp, digest).map_err(std::io::Error::other)
    }
}
