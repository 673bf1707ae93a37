//! The test bed's images made by `sarde build` (`crates/sardine-testbed/images`), which
//! `scripts/build-images` builds into a shared build cache before the tests: tests build the
//! same files with a copy of that cache, offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::environment::{scratch_dir, workspace_root};

/// The `SOURCE_DATE_EPOCH` of the test bed's builds: part of each image's cache key.
pub const BUILD_EPOCH: i64 = 1_700_000_000;

/// The test bed's build files.
pub fn build_files_dir() -> PathBuf {
    workspace_root().join("crates/sardine-testbed/images")
}

/// The build cache `scripts/build-images` filled; fails the test with a hint when it lacks the
/// test bed's images (the tests cannot reach Debian's mirror).
pub fn shared_build_cache() -> PathBuf {
    let cache = scratch_dir().join("build-cache");
    assert!(
        ["debian", "debian-dev", "base.qcow2"]
            .iter()
            .all(|image| cache.join(image).is_dir()),
        "the build cache {} lacks the test bed's images\nhint: run scripts/build-images as root (scripts/test does), outside the test namespace",
        cache.display()
    );
    cache
}

/// Copies the shared build cache's complete entries to `to` with hard links (entries are never
/// changed in place; builds in progress, with their mounts, are left out).
pub fn copy_build_cache(to: &Path) {
    let from = shared_build_cache();
    for image in fs_err::read_dir(&from).unwrap().filter_map(Result::ok) {
        if !image.file_type().unwrap().is_dir() {
            continue;
        }
        let target = to.join(image.file_name());
        fs_err::create_dir_all(&target).unwrap();
        for entry in fs_err::read_dir(image.path())
            .unwrap()
            .filter_map(Result::ok)
        {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let status = Command::new("cp")
                .arg("-al")
                .arg(entry.path())
                .arg(&target)
                .status()
                .unwrap();
            assert!(status.success(), "cp -al {}", entry.path().display());
        }
    }
}
