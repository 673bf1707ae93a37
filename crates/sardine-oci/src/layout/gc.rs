//! Garbage collection of the store: unreferenced repository blobs, orphaned pool files, stale
//! temporary files (including the partial downloads of interrupted fetches) and the use and
//! registry records of manifests no repository lists any more.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use std::os::unix::fs::MetadataExt as _;

use super::error::IoContext as _;
use super::{MAX_MANIFEST_SIZE, Repo, Store, StoreError, error_chain, fsutil, lock_at};
use crate::Digest;
use crate::lock;
use crate::reference::sha256_hex;

/// Temporary files older than this belong to dead processes.
const STALE_AGE: Duration = Duration::from_secs(3600);
/// How deep image indexes may nest before we give up on a repository.
const MAX_NESTING: usize = 8;

/// What [`gc`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Files removed (each repository link and each pool file counts).
    pub files: u64,
    /// Bytes of disk space freed (a blob shared by several links counts once, when its last link goes).
    pub bytes: u64,
}

/// Identifies a file independent of its names: (device, inode).
type InodeId = (u64, u64);

/// Removes repository blobs that no manifest, config or layer of that repository's `index.json`
/// entries references, then pool files no repository links to any more, then temp files older
/// than an hour, then records (`.sardine/used`, `.sardine/remote`) of manifests that no
/// repository lists, untouched for an hour. Each repository is swept under its lock
/// ([`Repo::lock`]) and the pool under the pool lock. A repository with an unreadable manifest
/// is skipped (with a warning), since we cannot tell what it references; with an unreadable
/// `index.json` no record is removed. With `dry_run` nothing is removed.
pub fn gc(store: &Store, dry_run: bool) -> Result<GcReport, StoreError> {
    let mut sweep = Sweep {
        dry_run,
        report: GcReport::default(),
        unlinked: HashMap::new(),
    };
    let mut listed = Some(HashSet::new());
    for repo in store.repos()? {
        let _guard = repo.lock()?;
        match repo.index() {
            Ok(index) => {
                if let Some(listed) = &mut listed {
                    listed.extend(index.manifests.into_iter().map(|desc| desc.digest));
                }
            }
            Err(_) => listed = None,
        }
        match referenced_blobs(&repo) {
            Ok(referenced) => sweep.repo_blobs(&repo, &referenced)?,
            Err(e) => tracing::warn!("gc: skipping image `{}`: {}", repo.name(), error_chain(&e)),
        }
        sweep.stale_temps(repo.path())?;
    }
    {
        let _guard = lock_at(&store.pool_lock_path(), lock::lock_exclusive)?;
        sweep.pool(&store.pool_dir())?;
    }
    sweep.stale_temps(&store.temp_dir()?)?;
    if let Some(listed) = listed {
        sweep.stale_records(store, &listed)?;
    }
    Ok(sweep.report)
}

/// Every sha256 digest reachable from the repository's `index.json`.
fn referenced_blobs(repo: &Repo) -> Result<HashSet<String>, StoreError> {
    let mut referenced = HashSet::new();
    for desc in repo.index()?.manifests {
        collect(repo, &desc.digest, 0, &mut referenced)?;
    }
    Ok(referenced)
}

/// Adds `digest` and, if it is a manifest or index present in the repository, what it references.
fn collect(
    repo: &Repo,
    digest: &str,
    depth: usize,
    referenced: &mut HashSet<String>,
) -> Result<(), StoreError> {
    let Ok(digest) = Digest::parse(digest) else {
        return Ok(());
    };
    if !referenced.insert(digest.to_string()) || !repo.has_blob(&digest) {
        return Ok(());
    }
    let data = repo.read_blob(&digest, MAX_MANIFEST_SIZE)?;
    let value: serde_json::Value =
        serde_json::from_slice(&data).map_err(|source| StoreError::BadManifest {
            repo: repo.name().to_owned(),
            digest: digest.clone(),
            source,
        })?;
    if depth < MAX_NESTING {
        for child in value
            .get("manifests")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(child_digest) = child.get("digest").and_then(|d| d.as_str()) {
                collect(repo, child_digest, depth + 1, referenced)?;
            }
        }
    }
    let single = ["config", "subject"]
        .into_iter()
        .filter_map(|key| value.get(key));
    let layers = value
        .get("layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten();
    for desc in single.chain(layers) {
        if let Some(d) = desc.get("digest").and_then(|d| d.as_str()) {
            referenced.insert(d.to_owned());
        }
    }
    Ok(())
}

struct Sweep {
    dry_run: bool,
    report: GcReport,
    /// Links removed per inode; lets a dry run predict which pool files would become garbage.
    unlinked: HashMap<InodeId, u64>,
}

impl Sweep {
    fn repo_blobs(&mut self, repo: &Repo, referenced: &HashSet<String>) -> Result<(), StoreError> {
        let dir = repo.blobs_dir();
        for (path, meta) in files_in(&dir)? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let digest = format!("sha256:{name}");
            let remove = if sha256_hex(&digest).is_some() {
                !referenced.contains(&digest)
            } else {
                is_stale(&meta)
            };
            if remove {
                if meta.nlink() <= 1 {
                    self.report.bytes += meta.len();
                } else {
                    *self.unlinked.entry((meta.dev(), meta.ino())).or_default() += 1;
                }
                self.remove(&path)?;
            }
        }
        Ok(())
    }

    fn pool(&mut self, dir: &Path) -> Result<(), StoreError> {
        for (path, meta) in files_in(dir)? {
            let removed_links = if self.dry_run {
                self.unlinked.get(&(meta.dev(), meta.ino())).copied()
            } else {
                None
            };
            if meta.nlink().saturating_sub(removed_links.unwrap_or(0)) <= 1 {
                self.report.bytes += meta.len();
                self.remove(&path)?;
            }
        }
        Ok(())
    }

    /// Records of manifests not in `listed`, untouched for an hour: a fetch or export writes its
    /// records just after listing the manifest, so a young record may belong to an image this
    /// sweep did not see yet.
    fn stale_records(&mut self, store: &Store, listed: &HashSet<String>) -> Result<(), StoreError> {
        for kind in ["used", "remote"] {
            for (path, meta) in files_in(&store.internal_dir().join(kind))? {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !listed.contains(&format!("sha256:{name}")) && is_stale(&meta) {
                    self.remove(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Our temp files (`.tmp-*`) and interrupted downloads (`*.partial`) directly in `dir`
    /// that nobody has touched for an hour.
    fn stale_temps(&mut self, dir: &Path) -> Result<(), StoreError> {
        for (path, meta) in files_in(dir)? {
            let ours = path.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(fsutil::TEMP_PREFIX) || n.ends_with(".partial")
            });
            if ours && is_stale(&meta) {
                self.report.bytes += meta.len();
                self.remove(&path)?;
            }
        }
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> Result<(), StoreError> {
        self.report.files += 1;
        if self.dry_run {
            tracing::info!("gc: would remove {}", path.display());
            return Ok(());
        }
        tracing::debug!("gc: removing {}", path.display());
        fsutil::remove_if_exists(path).context(|| "gc: cannot remove an unused file".to_owned())
    }
}

/// The regular files directly in `dir` with their metadata (none if `dir` is missing).
fn files_in(dir: &Path) -> Result<Vec<(std::path::PathBuf, std::fs::Metadata)>, StoreError> {
    let context = || format!("gc: cannot scan {}", dir.display());
    let entries = match fs_err::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.context(context)?,
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.context(context)?;
        let meta = fs_err::symlink_metadata(entry.path()).context(context)?;
        if meta.is_file() {
            files.push((entry.path(), meta));
        }
    }
    Ok(files)
}

fn is_stale(meta: &std::fs::Metadata) -> bool {
    let age = meta
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok());
    age.is_some_and(|age| age > STALE_AGE)
}
