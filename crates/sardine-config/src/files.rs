//! Where the configuration files are, and `~` expansion of paths.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Environment variables this crate reads.
pub mod env {
    /// Colon-separated list of sarde configuration files; when set (even empty) it replaces the
    /// default files. Each entry is `~`-expanded. Empty entries are skipped.
    pub const SARDE_CONF_FILES: &str = "SARDE_CONF_FILES";
    /// Colon-separated list of configuration files of `gitlab-sardinecake-executor`; when set it
    /// replaces the default files.
    pub const GITLAB_SARDINECAKE_EXECUTOR_CONF_FILES: &str =
        "GITLAB_SARDINECAKE_EXECUTOR_CONF_FILES";
    /// The user's home directory, used for `~` expansion and the per-user configuration file.
    pub const HOME: &str = "HOME";
    /// Base directory for per-user configuration (XDG base directory specification); when set,
    /// `$XDG_CONFIG_HOME/sardinecake/sarde.ini` is read after `~/.config/sardinecake/sarde.ini`.
    pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
    /// Base directory for per-user data (XDG base directory specification): non-root users'
    /// default store and VM directories are in `$XDG_DATA_HOME/sardinecake`.
    pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
    /// When set to a non-empty value, log messages have no colours (<https://no-color.org>).
    pub const NO_COLOR: &str = "NO_COLOR";
    /// When set to a non-empty value (and `NO_COLOR` is not), log messages have colours even
    /// when stderr is no terminal, e.g. in GitLab's job log.
    pub const CLICOLOR_FORCE: &str = "CLICOLOR_FORCE";
}

/// System-wide sarde configuration file.
pub const SARDE_SYSTEM_CONFIG: &str = "/etc/sardinecake/sarde.ini";
/// Per-user sarde configuration file (before `~` expansion).
pub const SARDE_USER_CONFIG: &str = "~/.config/sardinecake/sarde.ini";
/// System-wide executor configuration file.
pub const EXECUTOR_SYSTEM_CONFIG: &str = "/etc/gitlab-runner/gitlab-sardinecake-executor.ini";
/// Per-user executor configuration file (before `~` expansion).
pub const EXECUTOR_USER_CONFIG: &str = "~/.config/gitlab-runner/gitlab-sardinecake-executor.ini";

/// Expands a leading `~` or `~/` to `$HOME`. Other strings (including `~user/…`) are returned
/// unchanged, as is everything when `HOME` is not set.
pub fn expand_tilde(s: &str) -> PathBuf {
    expand_tilde_with(s.as_ref(), std::env::var_os(env::HOME))
}

/// [`expand_tilde`] for any file name, with an explicit home directory.
fn expand_tilde_with(s: &OsStr, home: Option<OsString>) -> PathBuf {
    let Some(home) = home.filter(|h| !h.is_empty()) else {
        return PathBuf::from(s);
    };
    let bytes = s.as_bytes();
    if bytes == b"~" {
        PathBuf::from(home)
    } else if let Some(rest) = bytes.strip_prefix(b"~/") {
        Path::new(&home).join(OsStr::from_bytes(rest))
    } else {
        PathBuf::from(s)
    }
}

/// The configuration files of `sarde`, in reading order (later files override earlier ones).
///
/// `SARDE_CONF_FILES` (colon-separated, `~`-expanded) replaces the defaults if set. Otherwise:
/// `/etc/sardinecake/sarde.ini`, `~/.config/sardinecake/sarde.ini` and, if `XDG_CONFIG_HOME` is
/// set and names another directory, `$XDG_CONFIG_HOME/sardinecake/sarde.ini`.
pub fn sarde_config_files() -> Vec<PathBuf> {
    sarde_config_files_with(|name| std::env::var_os(name))
}

/// [`sarde_config_files`] with an explicit environment.
fn sarde_config_files_with(var: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    if let Some(list) = var(env::SARDE_CONF_FILES) {
        return split_list(&list, var(env::HOME));
    }
    let mut files = vec![
        PathBuf::from(SARDE_SYSTEM_CONFIG),
        expand_tilde_with(SARDE_USER_CONFIG.as_ref(), var(env::HOME)),
    ];
    if let Some(xdg) = var(env::XDG_CONFIG_HOME).filter(|x| !x.is_empty()) {
        let xdg_file = Path::new(&xdg).join("sardinecake/sarde.ini");
        if !files.contains(&xdg_file) {
            files.push(xdg_file);
        }
    }
    files
}

/// The configuration files of `gitlab-sardinecake-executor`, in reading order.
///
/// `GITLAB_SARDINECAKE_EXECUTOR_CONF_FILES` (colon-separated, `~`-expanded) replaces the defaults
/// if set. Otherwise: `/etc/gitlab-runner/gitlab-sardinecake-executor.ini`, then
/// `~/.config/gitlab-runner/gitlab-sardinecake-executor.ini`.
pub fn executor_config_files() -> Vec<PathBuf> {
    executor_config_files_with(|name| std::env::var_os(name))
}

/// [`executor_config_files`] with an explicit environment.
fn executor_config_files_with(var: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    match var(env::GITLAB_SARDINECAKE_EXECUTOR_CONF_FILES) {
        Some(list) => split_list(&list, var(env::HOME)),
        None => vec![
            PathBuf::from(EXECUTOR_SYSTEM_CONFIG),
            expand_tilde_with(EXECUTOR_USER_CONFIG.as_ref(), var(env::HOME)),
        ],
    }
}

/// Splits a colon-separated list of files, skipping empty entries and expanding `~`.
fn split_list(list: &OsStr, home: Option<OsString>) -> Vec<PathBuf> {
    list.as_bytes()
        .split(|byte| *byte == b':')
        .filter(|entry| !entry.is_empty())
        .map(|entry| expand_tilde_with(OsStr::from_bytes(entry), home.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn environment(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn tilde_is_expanded_only_at_the_start() {
        let home = Some(OsString::from("/home/fish"));
        assert_eq!(
            expand_tilde_with("~".as_ref(), home.clone()),
            PathBuf::from("/home/fish")
        );
        assert_eq!(
            expand_tilde_with("~/oci".as_ref(), home.clone()),
            PathBuf::from("/home/fish/oci")
        );
        assert_eq!(
            expand_tilde_with("~other/oci".as_ref(), home.clone()),
            PathBuf::from("~other/oci")
        );
        assert_eq!(
            expand_tilde_with("/a/~/b".as_ref(), home.clone()),
            PathBuf::from("/a/~/b")
        );
        assert_eq!(
            expand_tilde_with("~/oci".as_ref(), None),
            PathBuf::from("~/oci")
        );
        assert_eq!(
            expand_tilde_with("~/oci".as_ref(), Some(OsString::new())),
            PathBuf::from("~/oci")
        );
    }

    #[test]
    fn sarde_defaults() {
        let files = sarde_config_files_with(environment(&[("HOME", "/home/fish")]));
        assert_eq!(
            files,
            [
                PathBuf::from("/etc/sardinecake/sarde.ini"),
                PathBuf::from("/home/fish/.config/sardinecake/sarde.ini")
            ]
        );
    }

    #[test]
    fn sarde_reads_xdg_config_home_last_and_only_once() {
        let files =
            sarde_config_files_with(environment(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")]));
        assert_eq!(
            files.last(),
            Some(&PathBuf::from("/x/sardinecake/sarde.ini"))
        );
        assert_eq!(files.len(), 3);
        let files = sarde_config_files_with(environment(&[
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "/h/.config"),
        ]));
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn sarde_conf_files_replaces_defaults() {
        let files = sarde_config_files_with(environment(&[
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "/x"),
            ("SARDE_CONF_FILES", "~/a.ini::/b.ini"),
        ]));
        assert_eq!(files, [PathBuf::from("/h/a.ini"), PathBuf::from("/b.ini")]);
        assert!(sarde_config_files_with(environment(&[("SARDE_CONF_FILES", "")])).is_empty());
    }

    #[test]
    fn executor_files() {
        let files = executor_config_files_with(environment(&[("HOME", "/h")]));
        assert_eq!(
            files,
            [
                PathBuf::from("/etc/gitlab-runner/gitlab-sardinecake-executor.ini"),
                PathBuf::from("/h/.config/gitlab-runner/gitlab-sardinecake-executor.ini")
            ]
        );
        let files = executor_config_files_with(environment(&[
            ("HOME", "/h"),
            ("GITLAB_SARDINECAKE_EXECUTOR_CONF_FILES", "~/e.ini:/f.ini"),
        ]));
        assert_eq!(files, [PathBuf::from("/h/e.ini"), PathBuf::from("/f.ini")]);
    }
}
