//! When each image was last used: `<ocidir>/.sardine/used/<hex>`, an empty file per manifest
//! whose modification time is the last fetch, export, import or clone of that manifest.
//! `sarde list` shows it and `sarde prune` removes the least recently used images first.
//! Other tools ignore the directory; an image without a marker counts as never used.

use std::path::PathBuf;
use std::time::SystemTime;

use super::Store;
use crate::reference::sha256_hex;

impl Store {
    /// Records that the image with manifest `manifest_digest` was used now. Best effort: a
    /// failure is logged (an unrecorded use only makes the image look older to `prune`).
    pub fn mark_used(&self, manifest_digest: &str) {
        let Some(path) = self.used_marker(manifest_digest) else { return };
        let touch = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                fs_err::create_dir_all(dir)?;
            }
            let file = fs_err::OpenOptions::new().create(true).append(true).open(&path)?;
            file.set_modified(SystemTime::now())
        };
        if let Err(e) = touch() {
            tracing::warn!("cannot record the use of {manifest_digest}: {e}");
        }
    }

    /// When the image with manifest `manifest_digest` was last used, if that was recorded.
    pub fn last_used(&self, manifest_digest: &str) -> Option<SystemTime> {
        fs_err::metadata(self.used_marker(manifest_digest)?).ok()?.modified().ok()
    }

    /// Removes the record of `manifest_digest` (once no repository lists it any more).
    pub fn forget_used(&self, manifest_digest: &str) -> std::io::Result<()> {
        let Some(path) = self.used_marker(manifest_digest) else { return Ok(()) };
        match fs_err::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// The manifest digests with a use record.
    pub fn used_records(&self) -> std::io::Result<Vec<String>> {
        let entries = match fs_err::read_dir(self.internal_dir().join("used")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let mut digests = Vec::new();
        for entry in entries {
            let digest = format!("sha256:{}", entry?.file_name().to_string_lossy());
            if sha256_hex(&digest).is_some() {
                digests.push(digest);
            }
        }
        Ok(digests)
    }

    fn used_marker(&self, manifest_digest: &str) -> Option<PathBuf> {
        let hex = sha256_hex(manifest_digest)?;
        Some(self.internal_dir().join("used").join(hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn marks_reads_and_forgets_uses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.last_used(DIGEST), None);
        let before = SystemTime::now() - std::time::Duration::from_secs(2);
        store.mark_used(DIGEST);
        assert!(store.last_used(DIGEST).unwrap() >= before);
        assert_eq!(store.used_records().unwrap(), [DIGEST]);
        store.forget_used(DIGEST).unwrap();
        assert_eq!(store.last_used(DIGEST), None);
        store.mark_used("sha256:not-hex");
        assert!(store.used_records().unwrap().is_empty());
    }
}
