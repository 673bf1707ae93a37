//! Writing blobs into a [`BlobSink`]: a temp file in the store's temp directory, fsynced, then committed.

use std::io::{BufWriter, Write};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::Digest as BlobDigest;
use crate::{BlobSink, DiskError};

/// A digest and size of a stored blob.
pub(crate) type StoredBlob = (BlobDigest, u64);

/// Stores `bytes` as one blob; writes nothing when the store already holds it.
pub(crate) fn store_bytes(sink: &dyn BlobSink, bytes: &[u8]) -> Result<StoredBlob, DiskError> {
    let digest = BlobDigest::of(bytes);
    let size = bytes.len() as u64;
    if !sink.contains(&digest) {
        let mut writer = TempBlob::new(sink)?;
        // The digest is known already: hashing the bytes a second time would cost ~10% of packing.
        writer.write_unhashed(bytes)?;
        writer.commit(&digest)?;
    }
    Ok((digest, size))
}

/// A blob being streamed into a temp file, hashed on the way.
pub(crate) struct TempBlob<'a> {
    sink: &'a dyn BlobSink,
    file: BufWriter<NamedTempFile>,
    hasher: Sha256,
    size: u64,
}

impl<'a> TempBlob<'a> {
    /// Creates the temp file.
    pub(crate) fn new(sink: &'a dyn BlobSink) -> Result<Self, DiskError> {
        let file = tempfile::Builder::new()
            .prefix(".sardine-blob-")
            .tempfile_in(sink.temp_dir())
            .map_err(|source| store_error(sink, source))?;
        Ok(Self {
            sink,
            file: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Bytes written so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), DiskError> {
        self.hasher.update(bytes);
        self.write_unhashed(bytes)
    }

    /// Appends bytes without hashing them, for a blob that is committed under a digest the caller
    /// computed (never [`TempBlob::finish`]ed).
    fn write_unhashed(&mut self, bytes: &[u8]) -> Result<(), DiskError> {
        self.size += bytes.len() as u64;
        self.file
            .write_all(bytes)
            .map_err(|source| store_error(self.sink, source))
    }

    /// Fsyncs the temp file and hands it to the store (or drops it if the store has the blob already).
    pub(crate) fn finish(self) -> Result<StoredBlob, DiskError> {
        let digest = BlobDigest::from_hasher(self.hasher.clone());
        let size = self.size;
        if !self.sink.contains(&digest) {
            self.commit(&digest)?;
        }
        Ok((digest, size))
    }

    /// Fsyncs and commits under a digest the caller computed.
    fn commit(self, digest: &BlobDigest) -> Result<(), DiskError> {
        let sink = self.sink;
        let size = self.size;
        let file = self
            .file
            .into_inner()
            .map_err(|err| store_error(sink, err.into_error()))?;
        file.as_file()
            .sync_all()
            .map_err(|source| store_error(sink, source))?;
        let mut path = file.into_temp_path();
        sink.commit(&path, digest, size)
            .map_err(|source| store_error(sink, source))?;
        // The store owns the file now: it must not be removed when `path` is dropped.
        path.disable_cleanup(true);
        Ok(())
    }
}

/// Wraps an I/O error while storing a blob.
fn store_error(sink: &dyn BlobSink, source: std::io::Error) -> DiskError {
    DiskError::Store {
        temp_dir: sink.temp_dir().to_path_buf(),
        source,
    }
}
