//! The local image store: one OCI image layout per repository below the ocidir.
//!
//! `<ocidir>/<name>/` holds `oci-layout`, `index.json` and `blobs/sha256/<hex>`, exactly as
//! sardinecake 0.4.2 and `skopeo copy … oci:<dir>` write them; tags are
//! `org.opencontainers.image.ref.name` annotations on the `index.json` entries.
//! What sarde adds lives in `<ocidir>/.sardine/`, which other tools ignore:
//!
//! * `blobs/sha256/<hex>`: a store-wide pool. Every committed blob is hard-linked from the pool
//!   into each repository that uses it, so identical disk chunks are stored once; a pool file
//!   whose link count is 1 is garbage ([`gc`]).
//! * `tmp/`: temporary files (same file system, so commits are renames and links).
//! * `locks/`: advisory locks, per repository ([`Repo::lock`]) and for `index.json` updates.
//! * `used/<hex>`: the last use of each manifest, as the modification time of an empty file
//!   ([`Store::mark_used`], [`Store::last_used`]).
//! * `remote/<hex>`: the registry reference each manifest was last fetched from or pushed to
//!   ([`Store::mark_remote`], [`Store::remote_of`]): such images can be fetched again.
//!
//! Differences from 0.4.2: re-tagging replaces the old entry instead of adding a duplicate (W8);
//! blobs and JSON files appear under their final name only when complete and fsynced (W10);
//! unreadable manifests, missing blobs and image indexes give clear errors, never crashes (W19).

mod error;
mod fsutil;
mod gc;
mod index_ops;
mod sink;
mod used;

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use error::IoContext as _;
pub use error::StoreError;
pub use gc::{GcReport, gc};
pub use sink::RepoSink;

use crate::Digest;
use crate::lock::{self, LockGuard};
use crate::manifest::{Descriptor, Index, Manifest};
use crate::media_types;
use crate::reference;

/// The directory below the ocidir holding sarde's own files.
const STORE_DIR: &str = ".sardine";
/// The largest manifest we read (the distribution spec's limit for registries).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The largest `index.json` we read.
const MAX_INDEX_SIZE: u64 = 64 << 20;
/// The content of a new `oci-layout` file (formatted like 0.4.2 writes it).
const OCI_LAYOUT_JSON: &[u8] = b"{\n  \"imageLayoutVersion\": \"1.0.0\"\n}";

/// The local store rooted at the ocidir.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One `index.json` entry, as `sarde list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// The repository name: its directory relative to the ocidir.
    pub name: String,
    /// The tag, if the entry has one.
    pub tag: Option<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// The image ID (config digest); None if the manifest cannot be read.
    pub id: Option<Digest>,
    /// The manifest size from the index entry.
    pub manifest_size: u64,
}

impl Store {
    /// A store rooted at `ocidir` (nothing is created yet).
    pub fn new(ocidir: impl Into<PathBuf>) -> Store {
        Store {
            root: ocidir.into(),
        }
    }

    /// The ocidir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The repository `name` (validated, so it is a safe relative path); does not create it.
    pub fn repo(&self, name: &str) -> Result<Repo, StoreError> {
        reference::validate_name(name)?;
        Ok(self.repo_unchecked(name))
    }

    /// An existing repository by its directory name, also accepting names that sardinecake 0.4.2
    /// allowed but OCI does not (`MyVM`): any relative path without empty, `.`, `..` or hidden
    /// components. Fails with [`StoreError::NoSuchRepo`] if there is no layout there.
    pub fn existing_repo(&self, name: &str) -> Result<Repo, StoreError> {
        if reference::validate_name(name).is_err() && !is_safe_legacy_name(name) {
            reference::validate_name(name)?;
        }
        let repo = self.repo_unchecked(name);
        if repo.exists() {
            Ok(repo)
        } else {
            Err(StoreError::NoSuchRepo {
                name: name.to_owned(),
                path: repo.path,
            })
        }
    }

    /// A repository found on disk (names written by 0.4.2 need not follow the OCI rules).
    fn repo_unchecked(&self, name: &str) -> Repo {
        Repo {
            store: self.clone(),
            name: name.to_owned(),
            path: self.root.join(name),
        }
    }

    /// The directory for temporary files, created if missing; on the store's file system.
    pub fn temp_dir(&self) -> Result<PathBuf, StoreError> {
        let dir = self.internal_dir().join("tmp");
        fs_err::create_dir_all(&dir).context(|| {
            format!(
                "cannot create the temp directory of {}",
                self.root.display()
            )
        })?;
        Ok(dir)
    }

    /// Every repository (a directory with `oci-layout` and `index.json`), sorted by name.
    /// A missing ocidir has none.
    pub fn repos(&self) -> Result<Vec<Repo>, StoreError> {
        let names = find_layouts(&self.root)
            .context(|| format!("cannot scan the image store {}", self.root.display()))?;
        Ok(names.iter().map(|name| self.repo_unchecked(name)).collect())
    }

    /// One entry per `index.json` descriptor of every repository, repositories sorted by name,
    /// entries in index order. Damaged repositories and manifests are logged and skipped or
    /// shown without an ID; they never make the whole listing fail.
    pub fn list(&self) -> Result<Vec<ImageEntry>, StoreError> {
        let mut entries = Vec::new();
        for repo in self.repos()? {
            match repo.index() {
                Ok(index) => entries.extend(repo.entries(&index)),
                Err(e) => tracing::warn!("skipping image `{}`: {}", repo.name(), error_chain(&e)),
            }
        }
        Ok(entries)
    }

    fn internal_dir(&self) -> PathBuf {
        self.root.join(STORE_DIR)
    }

    fn pool_dir(&self) -> PathBuf {
        self.internal_dir().join("blobs").join("sha256")
    }

    fn locks_dir(&self) -> PathBuf {
        self.internal_dir().join("locks")
    }

    /// Held shared while committing into the pool, exclusive while gc sweeps it.
    fn pool_lock_path(&self) -> PathBuf {
        self.locks_dir().join(".pool.lock")
    }
}

/// One repository: an OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Repo {
    store: Store,
    name: String,
    path: PathBuf,
}

impl Repo {
    /// The layout directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The repository name (relative to the ocidir).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store this repository belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the layout exists (has `oci-layout` and `index.json`).
    pub fn exists(&self) -> bool {
        self.layout_path().is_file() && self.index_path().is_file()
    }

    /// Creates the layout if needed: `blobs/sha256`, then `index.json`, then `oci-layout`
    /// (so it only counts as a layout once complete). Existing files are left alone.
    pub fn init(&self) -> Result<(), StoreError> {
        let blobs = self.blobs_dir();
        fs_err::create_dir_all(&blobs)
            .context(|| format!("cannot create image directory for `{}`", self.name))?;
        let _guard = self.index_lock()?;
        if !self.index_path().exists() {
            fsutil::write_atomic(&self.index_path(), &Index::new().to_json())
                .context(|| format!("cannot write index.json of `{}`", self.name))?;
        }
        if !self.layout_path().exists() {
            fsutil::write_atomic(&self.layout_path(), OCI_LAYOUT_JSON)
                .context(|| format!("cannot write oci-layout of `{}`", self.name))?;
        }
        Ok(())
    }

    /// The file of blob `digest`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the repository has blob `digest`.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Whether the store-wide pool holds blob `digest` of `size` bytes (another repository of
    /// the store has it), so it can be linked instead of downloaded ([`Repo::link_pooled_blob`]).
    pub fn has_pooled_blob(&self, digest: &Digest, size: u64) -> bool {
        let pooled = self.store.pool_dir().join(digest.hex());
        fs_err::metadata(pooled).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Links blob `digest` from the pool into this repository if the pool has it with `size`
    /// bytes; whether it did. Pool files were verified when they were committed, and the pool
    /// lock keeps [`gc`] from removing the file in between.
    pub fn link_pooled_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        let dest = self.blob_path(digest);
        if dest.is_file() {
            return Ok(true);
        }
        let context = || {
            format!(
                "cannot link blob {digest} from the pool into `{}`",
                self.name
            )
        };
        let _pool_guard = lock_at(&self.store.pool_lock_path(), lock::lock_shared)?;
        if !self.has_pooled_blob(digest, size) {
            return Ok(false);
        }
        fs_err::create_dir_all(self.blobs_dir()).context(context)?;
        let pooled = self.store.pool_dir().join(digest.hex());
        match link_no_clobber(&pooled, &dest) {
            Ok(()) => {}
            Err(e) if fsutil::link_unsupported(&e) => return Ok(false),
            Err(e) => {
                return Err(StoreError::Io {
                    context: context(),
                    source: e,
                });
            }
        }
        fsutil::sync_dir(&self.blobs_dir()).context(context)?;
        Ok(true)
    }

    /// Moves a finished temp file into the repository as blob `digest`.
    ///
    /// The caller has fsynced `temp` and verified that its sha256 is `digest`; `temp` must be on
    /// the store's file system (use [`Store::temp_dir`]). The file goes into the store-wide pool
    /// (or, if the pool has it already, is dropped) and is hard-linked from there into the
    /// repository, so identical blobs are stored once. If hard links are not possible it is
    /// renamed into the repository instead. `temp` is gone afterwards in every successful case.
    pub fn commit_blob(&self, temp: &Path, digest: &Digest) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        let context = || format!("cannot store blob {digest} in `{}`", self.name);
        if dest.is_file() {
            return fsutil::remove_if_exists(temp).context(context);
        }
        fs_err::create_dir_all(self.blobs_dir()).context(context)?;
        fsutil::set_readable(temp).context(context)?;
        let pool_dir = self.store.pool_dir();
        fs_err::create_dir_all(&pool_dir).context(context)?;
        let _pool_guard = lock_at(&self.store.pool_lock_path(), lock::lock_shared)?;
        let pooled = pool_dir.join(digest.hex());
        let linked = link_no_clobber(temp, &pooled).and_then(|()| link_no_clobber(&pooled, &dest));
        match linked {
            Ok(()) => fsutil::remove_if_exists(temp).context(context)?,
            Err(e) if fsutil::link_unsupported(&e) => {
                tracing::debug!(
                    "hard links unavailable ({e}); storing {digest} without deduplication"
                );
                fs_err::rename(temp, &dest).context(context)?;
            }
            Err(e) => {
                return Err(StoreError::Io {
                    context: context(),
                    source: e,
                });
            }
        }
        fsutil::sync_dir(&self.blobs_dir()).context(context)
    }

    /// Stores `data` as a blob (temp file, fsync, commit); returns its digest and size.
    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<(Digest, u64), StoreError> {
        let digest = Digest::of(data);
        let size = data.len() as u64;
        if self.has_blob(&digest) {
            return Ok((digest, size));
        }
        let context = || format!("cannot write blob {digest} for `{}`", self.name);
        let mut temp = tempfile::Builder::new()
            .prefix(fsutil::TEMP_PREFIX)
            .tempfile_in(self.store.temp_dir()?)
            .context(context)?;
        io::Write::write_all(&mut temp, data).context(context)?;
        temp.as_file().sync_all().context(context)?;
        let temp = temp.into_temp_path();
        self.commit_blob(&temp, &digest)?;
        Ok((digest, size))
    }

    /// Reads blob `digest` (at most `max_size` bytes) and checks its sha256.
    pub fn read_blob(&self, digest: &Digest, max_size: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let file = self.open_blob(digest, &path)?;
        let mut data = Vec::new();
        file.take(max_size.saturating_add(1))
            .read_to_end(&mut data)
            .context(|| format!("cannot read blob {digest} of `{}`", self.name))?;
        if data.len() as u64 > max_size {
            return Err(StoreError::TooLarge {
                path,
                max: max_size,
            });
        }
        let actual = Digest::of(&data);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                path,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Streams blob `digest` through sha256; returns its size if the content matches.
    pub fn verify_blob(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        let file = self.open_blob(digest, &path)?;
        let (actual, size) = fsutil::hash_reader(file)
            .context(|| format!("cannot read blob {digest} of `{}`", self.name))?;
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                path,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(size)
    }

    /// Reads `index.json` (leniently: unknown keys and entries without digest are kept).
    pub fn index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        let file = match fs_err::File::open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchRepo {
                    name: self.name.clone(),
                    path: self.path.clone(),
                });
            }
            other => other.context(|| format!("cannot open index.json of `{}`", self.name))?,
        };
        let mut data = Vec::new();
        file.take(MAX_INDEX_SIZE + 1)
            .read_to_end(&mut data)
            .context(|| format!("cannot read {}", path.display()))?;
        if data.len() as u64 > MAX_INDEX_SIZE {
            return Err(StoreError::TooLarge {
                path,
                max: MAX_INDEX_SIZE,
            });
        }
        serde_json::from_slice(&data).map_err(|source| StoreError::BadJson { path, source })
    }

    /// Selects an `index.json` entry like 0.4.2's import: a digest selects the entry with that
    /// digest; a tag the *last* entry carrying it; neither the last entry tagged `latest`, or
    /// else the last entry. Entries without a valid digest are ignored.
    pub fn resolve(
        &self,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Descriptor, StoreError> {
        let index = self.index()?;
        index_ops::resolve(&index, tag, digest)
            .cloned()
            .map_err(|miss| match miss {
                index_ops::Miss::Tag => StoreError::TagNotFound {
                    repo: self.name.clone(),
                    tag: tag.unwrap_or_default().to_owned(),
                },
                index_ops::Miss::Digest => StoreError::DigestNotFound {
                    repo: self.name.clone(),
                    digest: digest.unwrap_or_default().to_owned(),
                },
                index_ops::Miss::Empty => StoreError::EmptyRepo {
                    repo: self.name.clone(),
                },
            })
    }

    /// Reads and parses the manifest `desc` points at, checking digest and size.
    /// Image indexes are rejected with [`StoreError::IsIndex`].
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<Manifest, StoreError> {
        self.read_manifest_bytes(desc).map(|(_, manifest)| manifest)
    }

    /// Like [`Repo::read_manifest`], also returning the exact bytes (for pushing).
    pub fn read_manifest_bytes(
        &self,
        desc: &Descriptor,
    ) -> Result<(Vec<u8>, Manifest), StoreError> {
        let digest = desc.valid_digest()?;
        let is_index = || StoreError::IsIndex {
            repo: self.name.clone(),
            digest: digest.clone(),
        };
        if media_types::is_index(desc.media_type()) {
            return Err(is_index());
        }
        let data = self.read_blob(&digest, MAX_MANIFEST_SIZE)?;
        if data.len() as u64 != desc.size {
            let path = self.blob_path(&digest);
            return Err(StoreError::SizeMismatch {
                path,
                expected: desc.size,
                actual: data.len() as u64,
            });
        }
        let bad = |source| StoreError::BadManifest {
            repo: self.name.clone(),
            digest: digest.clone(),
            source,
        };
        let value: serde_json::Value = serde_json::from_slice(&data).map_err(bad)?;
        if value.get("manifests").is_some() && value.get("config").is_none() {
            return Err(is_index());
        }
        let manifest = serde_json::from_value(value).map_err(bad)?;
        Ok((data, manifest))
    }

    /// Points `tag` at the manifest (or, with None, adds an untagged entry unless the digest is
    /// listed already). Any other entry carrying the tag is removed, so tags never duplicate.
    /// Creates the layout if needed; the manifest blob must already be committed.
    /// `index.json` is replaced atomically under the index lock.
    pub fn set_tag(
        &self,
        manifest_digest: &Digest,
        manifest_size: u64,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(tag) = tag {
            reference::validate_tag(tag)?;
        }
        if !self.has_blob(manifest_digest) {
            return Err(StoreError::BlobMissing {
                repo: self.name.clone(),
                digest: manifest_digest.clone(),
            });
        }
        self.init()?;
        let new = Descriptor::new(media_type, manifest_digest, manifest_size);
        self.modify_index(|index| index_ops::set_tag(index, new, tag))?;
        // Tagging is how fetch and export finish: both count as a use.
        self.store.mark_used(manifest_digest);
        Ok(())
    }

    /// Removes every entry tagged `tag`; whether there was one. Blobs stay until [`gc`].
    pub fn remove_tag(&self, tag: &str) -> Result<bool, StoreError> {
        self.modify_index(|index| index_ops::remove_tag(index, tag))
    }

    /// Removes every entry for manifest `digest`; whether there was one. Blobs stay until [`gc`].
    pub fn remove_manifest(&self, digest: &str) -> Result<bool, StoreError> {
        self.modify_index(|index| index_ops::remove_digest(index, digest))
    }

    /// Takes the repository's exclusive lock (waiting if needed). Hold it from the first blob
    /// commit to the final [`Repo::set_tag`] of a fetch or export, so [`gc`] cannot remove blobs
    /// that are not referenced yet. [`Repo::set_tag`] itself uses a separate lock, so it can be
    /// called while holding this one.
    pub fn lock(&self) -> Result<LockGuard, StoreError> {
        lock_at(&self.lock_path(), lock::lock_exclusive)
    }

    fn modify_index(&self, edit: impl FnOnce(&mut Index) -> bool) -> Result<bool, StoreError> {
        let _guard = self.index_lock()?;
        let mut index = self.index()?;
        if !edit(&mut index) {
            return Ok(false);
        }
        fsutil::write_atomic(&self.index_path(), &index.to_json())
            .context(|| format!("cannot write index.json of `{}`", self.name))?;
        Ok(true)
    }

    fn entries(&self, index: &Index) -> Vec<ImageEntry> {
        let usable = index.manifests.iter().filter_map(|desc| {
            let digest = desc.valid_digest().ok();
            if digest.is_none() {
                tracing::warn!(
                    "image `{}`: ignoring an index.json entry without a valid digest",
                    self.name
                );
            }
            Some((desc, digest?))
        });
        usable
            .map(|(desc, digest)| ImageEntry {
                name: self.name.clone(),
                tag: desc.ref_name().map(str::to_owned),
                digest,
                id: self.image_id(desc),
                manifest_size: desc.size,
            })
            .collect()
    }

    fn image_id(&self, desc: &Descriptor) -> Option<Digest> {
        match self.read_manifest(desc) {
            Ok(manifest) => manifest.config.valid_digest().ok(),
            Err(e) => {
                tracing::warn!("image `{}` {}: {}", self.name, desc.digest, error_chain(&e));
                None
            }
        }
    }

    fn open_blob(&self, digest: &Digest, path: &Path) -> Result<fs_err::File, StoreError> {
        match fs_err::File::open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobMissing {
                repo: self.name.clone(),
                digest: digest.clone(),
            }),
            other => other.context(|| format!("cannot open blob {digest} of `{}`", self.name)),
        }
    }

    fn index_lock(&self) -> Result<LockGuard, StoreError> {
        let path = self
            .store
            .locks_dir()
            .join(".index")
            .join(lock_file_name(&self.name));
        lock_at(&path, lock::lock_exclusive)
    }

    fn lock_path(&self) -> PathBuf {
        self.store.locks_dir().join(lock_file_name(&self.name))
    }

    fn blobs_dir(&self) -> PathBuf {
        self.path.join("blobs").join("sha256")
    }

    fn index_path(&self) -> PathBuf {
        self.path.join("index.json")
    }

    fn layout_path(&self) -> PathBuf {
        self.path.join("oci-layout")
    }
}

/// Links `from` to `to`; an existing `to` counts as success (blobs are content-addressed).
fn link_no_clobber(from: &Path, to: &Path) -> io::Result<()> {
    match fs_err::hard_link(from, to) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn lock_at(path: &Path, take: fn(&Path) -> io::Result<LockGuard>) -> Result<LockGuard, StoreError> {
    take(path).map_err(|source| StoreError::Lock {
        path: path.to_owned(),
        source,
    })
}

/// `name` as a single file name: bytes other than `[A-Za-z0-9._-]` are percent-encoded, so
/// different names give different files (`a/b` is `a%2Fb.lock`).
fn lock_file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 5);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out.push_str(".lock");
    out
}

/// Whether `name` is a relative path whose components are neither empty nor hidden (so not `.`
/// or `..` either); [`find_layouts`] only ever returns such names.
fn is_safe_legacy_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.') && !c.contains('\0'))
}

/// Directories below `root` (relative, `/`-separated) that hold `oci-layout` and `index.json`.
/// Hidden directories (including `.sardine`) and the `blobs` directories of layouts are skipped,
/// symlinks are not followed, and unreadable subdirectories are logged and skipped.
fn find_layouts(root: &Path) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = pending.pop() {
        let is_layout =
            !rel.is_empty() && dir.join("oci-layout").is_file() && dir.join("index.json").is_file();
        if is_layout {
            found.push(rel.clone());
        }
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if rel.is_empty() && e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) if rel.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!("skipping unreadable directory: {e}");
                continue;
            }
        };
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                tracing::warn!("skipping {}: the name is not UTF-8", entry.path().display());
                continue;
            };
            let skip = name.starts_with('.') || (is_layout && name == "blobs");
            if skip || !entry.file_type()?.is_dir() {
                continue;
            }
            let child_rel = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            pending.push((entry.path(), child_rel));
        }
    }
    found.sort();
    Ok(found)
}

/// An error and its causes on one line, for log messages.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
