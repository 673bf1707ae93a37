//! Test helpers: a directory-backed blob store and sparse test files (with `sardine_testbed`'s
//! pseudo-random noise, so compression has real work to do).

#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sardine_disk::{BlobSink, Digest, KnownBlob};
use sardine_testbed::noise;

/// A blob store in a temp directory: `blobs/<hex>` plus a `tmp/` directory, counting commits.
pub struct DirSink {
    pub root: tempfile::TempDir,
    temp: PathBuf,
    pub commits: AtomicUsize,
    /// Blobs offered for reuse by (uncompressed digest, length), as an export's sink does.
    pub offers: HashMap<(Digest, u64), KnownBlob>,
    /// The digests of the offered blobs the packer adopted.
    pub adopted: Mutex<Vec<Digest>>,
}

impl DirSink {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("blobs")).unwrap();
        let temp = root.path().join("tmp");
        std::fs::create_dir(&temp).unwrap();
        Self {
            root,
            temp,
            commits: AtomicUsize::new(0),
            offers: HashMap::new(),
            adopted: Mutex::new(Vec::new()),
        }
    }

    /// Where the blob with this digest is.
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.root
            .path()
            .join("blobs")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    /// Number of blobs in the store.
    pub fn blob_count(&self) -> usize {
        std::fs::read_dir(self.root.path().join("blobs"))
            .unwrap()
            .count()
    }

    /// Number of files left in the temp directory.
    pub fn temp_count(&self) -> usize {
        std::fs::read_dir(&self.temp).unwrap().count()
    }
}

impl BlobSink for DirSink {
    fn temp_dir(&self) -> &Path {
        &self.temp
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.blob(digest).exists()
    }

    fn commit(&self, temp: &Path, digest: &Digest, _size: u64) -> std::io::Result<()> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        std::fs::rename(temp, self.blob(digest))
    }

    fn known_chunk(&self, digest: &Digest, length: u64) -> Option<KnownBlob> {
        self.offers.get(&(digest.clone(), length)).cloned()
    }

    fn adopt(&self, blob: &KnownBlob) -> std::io::Result<bool> {
        std::fs::copy(&blob.path, self.blob(&blob.digest))?;
        self.adopted.lock().unwrap().push(blob.digest.clone());
        Ok(true)
    }
}

/// Creates a sparse file of `size` bytes with the given regions written (the rest are holes).
pub fn sparse_file(path: &Path, size: u64, regions: &[(u64, Vec<u8>)]) {
    let file = std::fs::File::create_new(path).unwrap();
    file.set_len(size).unwrap();
    for (offset, data) in regions {
        file.write_all_at(data, *offset).unwrap();
    }
    file.sync_all().unwrap();
}

/// A typical test disk: 40 MiB with noise, text and zeros here and there, and large holes.
pub fn test_disk(path: &Path) -> u64 {
    let size = (40 << 20) + 12345;
    sparse_file(
        path,
        size,
        &[
            (0, noise(1, 300_000)),
            (5 << 20, b"hello sardines ".repeat(50_000)),
            ((17 << 20) + 3, noise(2, 2 << 20)),
            (30 << 20, vec![0u8; 1 << 20]),
            (size - 1000, noise(3, 1000)),
        ],
    );
    size
}
