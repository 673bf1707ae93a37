//! File system helpers: atomic writes, directory fsync, hashing files.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// Prefix of our temporary files inside layout directories; never a valid blob or layout name.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Writes `data` to `target` atomically: a temp file in the same directory is written, fsynced
/// and renamed over `target`, then the directory is fsynced. Readers see the old or the new
/// content, never a partial file, and the temp file never has a valid name.
pub(crate) fn write_atomic(target: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent_of(target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{name}-"))
        .tempfile_in(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create a temp file in {}: {e}", dir.display()),
            )
        })?;
    temp.write_all(data)?;
    temp.as_file().sync_all()?;
    set_readable(temp.path())?;
    temp.persist(target).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes a file we created (tempfile uses 0600) readable like other layout files (0644).
pub(crate) fn set_readable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// Fsyncs a directory so that renames and links in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

/// The directory containing `path` (`.` for a bare file name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Streams `reader` through sha256; returns (`sha256:<hex>`, size).
pub(crate) fn hash_reader(mut reader: impl Read) -> io::Result<(crate::Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((crate::Digest::from_hasher(hasher), size))
}

/// Whether a failed `link()` means "this file system cannot hard-link here" (so we fall back
/// to a rename) rather than a real error.
pub(crate) fn link_unsupported(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::CrossesDevices
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::Unsupported
            | io::ErrorKind::TooManyLinks
    )
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs_err::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index.json");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(fs_err::read(&target).unwrap(), b"two");
        let names: Vec<_> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("index.json")]);
    }

    #[test]
    fn hash_reader_counts_and_hashes() {
        let (digest, size) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            digest,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
