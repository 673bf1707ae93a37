//! Where sarde keeps images and VMs when no directory is configured.
//!
//! As the container tools do (podman: `/var/lib/containers` for root,
//! `~/.local/share/containers` for users): root uses [`SYSTEM_DATA_DIR`], the directory the
//! GitLab executor and the Debian package use too, so that images `sarde` fetches on a runner
//! host are the ones the executor finds; other users get `$XDG_DATA_HOME/sardinecake`
//! (`~/.local/share/sardinecake`), which libvirt's session daemon (`qemu:///session`, the
//! default URI of non-root users) can read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::files::env;

/// The data directory of root (and of the GitLab executor): `oci/`, `vms/`, `clones/` below it.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/sardinecake";

/// The default data directory of this process's user (see the module documentation).
pub fn data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    data_dir_with(root, |name| std::env::var_os(name))
}

/// [`data_dir`] with an explicit user and environment.
fn data_dir_with(root: bool, var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if root {
        return PathBuf::from(SYSTEM_DATA_DIR);
    }
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(data_home) = absolute(var(env::XDG_DATA_HOME)) {
        return data_home.join("sardinecake");
    }
    match absolute(var(env::HOME)) {
        Some(home) => home.join(".local/share/sardinecake"),
        // No home: the system directory, which then fails with a clear permission error.
        None => Path::new(SYSTEM_DATA_DIR).to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn root_uses_the_system_directory_whatever_the_environment() {
        let vars = [("HOME", "/root"), ("XDG_DATA_HOME", "/x")];
        assert_eq!(
            data_dir_with(true, env(&vars)),
            PathBuf::from("/var/lib/sardinecake")
        );
    }

    #[test]
    fn users_get_their_xdg_data_directory() {
        let both = [("HOME", "/home/u"), ("XDG_DATA_HOME", "/data")];
        assert_eq!(
            data_dir_with(false, env(&both)),
            PathBuf::from("/data/sardinecake")
        );
        // A relative XDG_DATA_HOME is invalid by the specification and ignored.
        let relative = [("HOME", "/home/u"), ("XDG_DATA_HOME", "data")];
        assert_eq!(
            data_dir_with(false, env(&relative)),
            PathBuf::from("/home/u/.local/share/sardinecake")
        );
        assert_eq!(
            data_dir_with(false, env(&[])),
            PathBuf::from("/var/lib/sardinecake")
        );
    }
}
