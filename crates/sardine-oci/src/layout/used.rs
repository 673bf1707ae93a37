//! What the store knows about each image besides its files, one small file per manifest:
//!
//! * `<ocidir>/.sardine/used/<hex>`: empty, its modification time is the last fetch, export,
//!   import or clone of that manifest. `sarde list` shows it and `sarde prune` removes the least
//!   recently used images first. An image without one counts as never used.
//! * `<ocidir>/.sardine/remote/<hex>`: the registry reference the manifest was last fetched from
//!   or pushed to. Automatic pruning removes only such images: they can be fetched again, while
//!   an image that was only exported may exist nowhere else.
//!
//! Other tools ignore the directory.

use std::path::PathBuf;
use std::time::SystemTime;

use super::Store;
use crate::Digest;

impl Store {
    /// Records that the image with manifest `manifest_digest` was used now. Best effort: a
    /// failure is logged (an unrecorded use only makes the image look older to `prune`).
    pub fn mark_used(&self, manifest_digest: &Digest) {
        let Some(path) = self.used_marker(manifest_digest) else {
            return;
        };
        let touch = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                fs_err::create_dir_all(dir)?;
            }
            let file = fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.set_modified(SystemTime::now())
        };
        if let Err(e) = touch() {
            tracing::warn!("cannot record the use of {manifest_digest}: {e}");
        }
    }

    /// When the image with manifest `manifest_digest` was last used, if that was recorded.
    pub fn last_used(&self, manifest_digest: &Digest) -> Option<SystemTime> {
        fs_err::metadata(self.used_marker(manifest_digest)?)
            .ok()?
            .modified()
            .ok()
    }

    /// The manifest digests with a use record.
    pub fn used_records(&self) -> std::io::Result<Vec<Digest>> {
        let entries = match fs_err::read_dir(self.internal_dir().join("used")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let mut digests = Vec::new();
        for entry in entries {
            let name = format!("sha256:{}", entry?.file_name().to_string_lossy());
            if let Ok(digest) = Digest::parse(&name) {
                digests.push(digest);
            }
        }
        Ok(digests)
    }

    /// Records that the image with manifest `manifest_digest` is in the registry at `reference`
    /// (fetched from or pushed there). Best effort, like [`Store::mark_used`].
    pub fn mark_remote(&self, manifest_digest: &Digest, reference: &str) {
        let Some(path) = self.marker("remote", manifest_digest) else {
            return;
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                fs_err::create_dir_all(dir)?;
            }
            fs_err::write(&path, format!("{reference}\n"))
        };
        if let Err(e) = write() {
            tracing::warn!("cannot record that {manifest_digest} is in {reference}: {e}");
        }
    }

    /// The registry reference the image was last fetched from or pushed to, if recorded.
    pub fn remote_of(&self, manifest_digest: &Digest) -> Option<String> {
        let text = fs_err::read_to_string(self.marker("remote", manifest_digest)?).ok()?;
        Some(text.trim().to_owned()).filter(|reference| !reference.is_empty())
    }

    /// Removes both records of `manifest_digest` (once no repository lists it any more).
    pub fn forget_records(&self, manifest_digest: &Digest) -> std::io::Result<()> {
        for kind in ["used", "remote"] {
            let Some(path) = self.marker(kind, manifest_digest) else {
                continue;
            };
            match fs_err::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn used_marker(&self, manifest_digest: &Digest) -> Option<PathBuf> {
        self.marker("used", manifest_digest)
    }

    fn marker(&self, kind: &str, manifest_digest: &Digest) -> Option<PathBuf> {
        Some(self.internal_dir().join(kind).join(manifest_digest.hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::of(b"manifest")
    }

    #[test]
    fn marks_reads_and_forgets_uses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.last_used(&digest()), None);
        let before = SystemTime::now() - std::time::Duration::from_secs(2);
        store.mark_used(&digest());
        assert!(store.last_used(&digest()).unwrap() >= before);
        assert_eq!(store.used_records().unwrap(), [digest()]);
        store.forget_records(&digest()).unwrap();
        assert_eq!(store.last_used(&digest()), None);
        fs_err::write(store.internal_dir().join("used/not-hex"), "").unwrap();
        assert!(store.used_records().unwrap().is_empty());
    }

    #[test]
    fn records_and_forgets_where_an_image_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.remote_of(&digest()), None);
        store.mark_remote(&digest(), "127.0.0.1:5000/vm:1");
        store.mark_used(&digest());
        assert_eq!(
            store.remote_of(&digest()).as_deref(),
            Some("127.0.0.1:5000/vm:1")
        );
        store.forget_records(&digest()).unwrap();
        assert_eq!(
            (store.remote_of(&digest()), store.last_used(&digest())),
            (None, None)
        );
        store.forget_records(&digest()).unwrap();
    }
}
