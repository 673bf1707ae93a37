//! Paths that go into domain definitions.
//!
//! libvirtd opens a domain's disks, kernel, initrd and NVRAM itself, from its own working
//! directory, so a relative path that was right for the user is wrong for it. Every directory a
//! domain's files live in is therefore made absolute and canonical (no `.`, `..` or symlinks)
//! before any path is derived from it.

use std::path::{Path, PathBuf};

/// Creates `dir` if needed and returns its canonical absolute path.
pub(crate) fn canonical_dir(dir: &Path) -> std::io::Result<PathBuf> {
    fs_err::create_dir_all(dir)?;
    fs_err::canonicalize(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

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
