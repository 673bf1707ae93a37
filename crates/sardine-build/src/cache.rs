//! The build cache: one directory per image and cache key, `<cache>/<image>/<key>/`, holding
//! the image's files (its disk with its parent chain as hard links, kernel, initrd, domain
//! definition, VM config) once they are complete; a build in progress is a staging directory
//! next to it that is renamed into place, so a failed or killed build leaves nothing under a
//! valid key.
//!
//! An image's key is the SHA-256 of its definition (as [`crate::spec`] serialises it) and
//! `SOURCE_DATE_EPOCH`, the content digest of its parent's disk (for a parent of the file: the digest recorded when it
//! was built) and the content of every host file its actions copy in (directories: every
//! path, mode, link target and file content below them, in order).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::BuildError;
use crate::spec::ImageSpec;

/// Bumped when what a build makes of the same definition changes.
const CACHE_VERSION: u32 = 1;

/// The name of the file that marks an entry complete and holds its disk's content digest.
const CONTENT: &str = "content";

/// The cache key of `image` whose parent's content digest is `parent`, built with
/// `SOURCE_DATE_EPOCH` `epoch`.
pub fn key(
    image: &ImageSpec,
    parent: Option<&str>,
    epoch: Option<i64>,
) -> Result<String, BuildError> {
    let mut hasher = Sha256::new();
    let definition = serde_json::json!({
        "sardine-build": CACHE_VERSION,
        "parent": parent,
        "image": image,
        // What a build makes with it differs from what it makes without.
        "source_date_epoch": epoch.map(|e| e.to_string()),
    });
    hasher.update(serde_json::to_vec(&definition).unwrap_or_default());
    for file in image.host_files() {
        hasher.update(file.written.as_bytes());
        hash_tree(&mut hasher, &file.path)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hashes a host file or directory tree into `hasher`.
fn hash_tree(hasher: &mut Sha256, path: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = fs_err::symlink_metadata(path).map_err(|e| BuildError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source: e,
    })?;
    hasher.update(meta.permissions().mode().to_le_bytes());
    if meta.file_type().is_symlink() {
        let target = fs_err::read_link(path).map_err(|e| BuildError::Io {
            what: "reading",
            path: path.to_path_buf(),
            source: e,
        })?;
        hasher.update(target.as_os_str().as_encoded_bytes());
    } else if meta.is_dir() {
        let mut names: Vec<_> = fs_err::read_dir(path)
            .map_err(|e| BuildError::Io {
                what: "listing",
                path: path.to_path_buf(),
                source: e,
            })?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        names.sort();
        for name in names {
            hasher.update(name.as_encoded_bytes());
            hasher.update([0]);
            hash_tree(hasher, &path.join(name))?;
        }
    } else {
        let mut file = std::fs::File::open(path).map_err(BuildError::io("reading", path))?;
        std::io::copy(&mut file, hasher).map_err(BuildError::io("reading", path))?;
    }
    Ok(())
}

/// The SHA-256 of a file's content (a built disk's content digest).
pub fn file_digest(path: &Path) -> Result<String, BuildError> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(BuildError::io("reading", path))?;
    std::io::copy(&mut file, &mut hasher).map_err(BuildError::io("reading", path))?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// The cache of one build.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// Where the entry of `image` with `key` is (complete or not).
    pub fn entry(&self, image: &str, key: &str) -> PathBuf {
        self.dir.join(image).join(&key[..32.min(key.len())])
    }

    /// The content digest of a complete entry (`None`: no complete entry).
    pub fn content(&self, entry: &Path) -> Option<String> {
        fs_err::read_to_string(entry.join(CONTENT))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Records that a build used the entry (its marker's time is its last use).
    pub fn touch(&self, entry: &Path) {
        if let Ok(file) = std::fs::File::options()
            .append(true)
            .open(entry.join(CONTENT))
        {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Whether `image` has complete entries under other keys (it was built from another
    /// definition).
    pub fn has_other_entries(&self, image: &str, entry: &Path) -> bool {
        fs_err::read_dir(self.dir.join(image))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.path())
                    .any(|p| p != entry && p.join(CONTENT).exists())
            })
            .unwrap_or(false)
    }

    /// A fresh staging directory for `image` (removing those that killed builds left).
    pub fn staging(&self, image: &str) -> Result<PathBuf, BuildError> {
        let parent = self.dir.join(image);
        fs_err::create_dir_all(&parent).map_err(|e| BuildError::Io {
            what: "creating",
            path: parent.clone(),
            source: e,
        })?;
        let staging = parent.join(format!(".staging-{}", std::process::id()));
        remove_dir(&staging)?;
        fs_err::create_dir(&staging).map_err(|e| BuildError::Io {
            what: "creating",
            path: staging.clone(),
            source: e,
        })?;
        Ok(staging)
    }

    /// Marks `staging` complete with `content` and moves it to `entry`, replacing what was
    /// there. Other entries of the image that no build used for [`KEEP_UNUSED`] go (their
    /// files live on in their children's entries, which hold hard links to them); recent ones
    /// stay, for other build files with an image of the same name, or a change undone.
    pub fn commit(&self, staging: &Path, entry: &Path, content: &str) -> Result<(), BuildError> {
        let marker = staging.join(CONTENT);
        fs_err::write(&marker, content).map_err(|e| BuildError::Io {
            what: "writing",
            path: marker,
            source: e,
        })?;
        remove_dir(entry)?;
        fs_err::rename(staging, entry).map_err(|e| BuildError::Io {
            what: "renaming into place",
            path: entry.to_path_buf(),
            source: e,
        })?;
        if let Some(parent) = entry.parent()
            && let Ok(dir) = fs_err::read_dir(parent)
        {
            for other in dir.filter_map(Result::ok).map(|e| e.path()) {
                let name = other.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if other != entry && !name.starts_with(".staging-") && unused_for_long(&other) {
                    remove_dir(&other)?;
                }
            }
        }
        Ok(())
    }

    /// The lock file of `image`: one build of it at a time.
    pub fn lock_path(&self, image: &str) -> PathBuf {
        self.dir.join(format!("{image}.lock"))
    }
}

/// How long an entry that no build uses stays when its image is built anew.
pub const KEEP_UNUSED: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Whether no build used the entry for [`KEEP_UNUSED`] (or it is incomplete).
fn unused_for_long(entry: &Path) -> bool {
    fs_err::metadata(entry.join(CONTENT))
        .and_then(|m| m.modified())
        .map(|used| used.elapsed().unwrap_or_default() > KEEP_UNUSED)
        .unwrap_or(true)
}

/// Removes a directory tree if it exists.
pub fn remove_dir(dir: &Path) -> Result<(), BuildError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BuildError::Io {
            what: "removing",
            path: dir.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Action, HostFile, Origin, VmSpec};

    fn image(actions: Vec<Action>) -> ImageSpec {
        ImageSpec {
            name: "a".into(),
            origin: Origin::Parent("p".into()),
            size: None,
            packages: vec![],
            hostname: None,
            users: vec![],
            actions,
            steps: vec![],
            vm: VmSpec::default(),
        }
    }

    #[test]
    fn key_follows_definition_parent_and_file_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs_err::write(&file, "one").unwrap();
        let copy = |path: &Path| Action::Upload {
            file: HostFile {
                written: "f".into(),
                path: path.to_path_buf(),
            },
            dest: "/f".into(),
        };
        let base = key(&image(vec![copy(&file)]), Some("sha256:1"), None).unwrap();
        assert_eq!(
            base,
            key(&image(vec![copy(&file)]), Some("sha256:1"), None).unwrap()
        );
        assert_ne!(
            base,
            key(&image(vec![copy(&file)]), Some("sha256:2"), None).unwrap()
        );
        fs_err::write(&file, "two").unwrap();
        assert_ne!(
            base,
            key(&image(vec![copy(&file)]), Some("sha256:1"), None).unwrap()
        );
        // Where the build file is does not matter, only what it says and what the files hold.
        let moved = dir.path().join("g");
        fs_err::write(&moved, "two").unwrap();
        assert_eq!(
            key(&image(vec![copy(&file)]), Some("sha256:1"), None).unwrap(),
            key(&image(vec![copy(&moved)]), Some("sha256:1"), None).unwrap()
        );
    }
}
