//! Paths that go into domain definitions.
//!
//! libvirtd opens a domain's disks, kernel, initrd and NVRAM itself, from its own working
//! directory, so a relative path that was right for the user is wrong for it. Every directory a
//! domain's files live in is therefore made absolute and canonical (no `.`, `..` or symlinks)
//! before any path is derived from it.
//!
//! A VM's own directory and files hold the guest's secrets: they are private to their owner
//! (0700 and 0600; QEMU runs as root on the hosts sarde is meant for, see docs/security.md for
//! hosts where it does not), and made durable before the domain that names them is defined.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Creates `dir` if needed and returns its canonical absolute path.
pub(crate) fn canonical_dir(dir: &Path) -> std::io::Result<PathBuf> {
    fs_err::create_dir_all(dir)?;
    fs_err::canonicalize(dir)
}

/// Creates the directory `dir` (its parent exists) with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("could not create {}: {e}", dir.display()))
        })
}

/// Makes every file in `dir` private (0600) and durable (fsync), then `dir` itself (its
/// entries): what a VM's files need before the domain is defined.
pub(crate) fn seal_files(dir: &Path) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            fs_err::File::open(&path)?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// fsyncs the directory `dir`: its entries (a file created, a directory renamed into it)
/// survive a power cut.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_and_sealed_files_are_the_owner_s_only() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("vm");
        create_private_dir(&dir).unwrap();
        fs_err::write(dir.join("disk.qcow2"), b"secret").unwrap();
        seal_files(&dir).unwrap();
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("disk.qcow2")), 0o600);
        assert!(
            create_private_dir(&dir).is_err(),
            "an existing directory is reused"
        );
    }

    #[test]
    fn symlinks_and_dot_dots_are_resolved() {
        let base = tempfile::tempdir().unwrap();
        let real = fs_err::canonicalize(base.path()).unwrap();
        std::os::unix::fs::symlink(&real, real.join("link")).unwrap();
        let made = canonical_dir(&real.join("link/a/../b/./c")).unwrap();
        assert_eq!(made, real.join("b/c"));
        assert!(made.is_dir());
    }
}
