//! `registries.conf` (containers-registries.conf(5), version 2), as podman and skopeo read
//! it: per registry (or namespace) prefix, a `location` to use instead, `insecure` (plain
//! http), `blocked`, and mirrors that pulls try first.
//!
//! Files: `$CONTAINERS_REGISTRIES_CONF` alone when set; else `/etc/containers/registries.conf`,
//! then `/etc/containers/registries.conf.d/*.conf` (sorted), then
//! `~/.config/containers/registries.conf`. Later files add entries and override earlier ones of
//! the same prefix. Other keys (`unqualified-search-registries`, aliases, …) are ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::reference::Reference;

/// What a registries.conf says, merged from all its files.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    entries: Vec<(Entry, PathBuf)>,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The names it applies to (`host[:port][/path]`); default: `location`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Where those names really are.
    #[serde(default)]
    pub location: String,
    /// Plain http.
    #[serde(default)]
    pub insecure: bool,
    /// Refuse pulls and pushes.
    #[serde(default)]
    pub blocked: bool,
    /// Tried in order before `location`, for pulls only.
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<Mirror>,
    /// Mirrors only for references by digest.
    #[serde(default, rename = "mirror-by-digest-only")]
    pub mirror_by_digest_only: bool,
}

/// One `[[registry.mirror]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Mirror {
    /// The mirror's `host[:port][/path]`.
    pub location: String,
    /// Plain http.
    #[serde(default)]
    pub insecure: bool,
}

/// A place to pull an image from or push it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The image there.
    pub reference: Reference,
    /// Plain http.
    pub insecure: bool,
    /// A mirror (else the image's own location).
    pub mirror: bool,
}

/// Why a reference cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// A registries.conf file cannot be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The registry is blocked.
    #[error("{reference} is blocked by {path}")]
    Blocked {
        /// The reference.
        reference: String,
        /// The file that blocks it.
        path: PathBuf,
    },
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    registry: Vec<Entry>,
}

impl Registries {
    /// Reads the files of the module documentation that exist.
    pub fn load() -> Result<Registries, RegistriesError> {
        let mut registries = Registries::default();
        for path in files() {
            if path.is_file() {
                registries.add_file(&path)?;
            }
        }
        Ok(registries)
    }

    /// Adds the entries of one file (replacing earlier entries of the same prefix).
    pub fn add_file(&mut self, path: &Path) -> Result<(), RegistriesError> {
        let invalid = |reason: String| RegistriesError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let text = fs_err::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for entry in file.registry {
            if entry.location.is_empty() && entry.prefix.is_none() {
                return Err(invalid(
                    "a [[registry]] has neither location nor prefix".into(),
                ));
            }
            let prefix = entry.prefix().to_owned();
            self.entries.retain(|(old, _)| old.prefix() != prefix);
            self.entries.push((entry, path.to_owned()));
        }
        Ok(())
    }

    /// Where to pull `reference` from: the mirrors to try in order, then its location.
    pub fn pull_endpoints(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<Endpoint>, Endpoint), RegistriesError> {
        self.endpoints(reference, true)
    }

    /// Where to push `reference`: its location (never a mirror).
    pub fn push_endpoint(&self, reference: &Reference) -> Result<Endpoint, RegistriesError> {
        Ok(self.endpoints(reference, false)?.1)
    }

    fn endpoints(
        &self,
        reference: &Reference,
        pull: bool,
    ) -> Result<(Vec<Endpoint>, Endpoint), RegistriesError> {
        let Some((entry, path)) = self.matching(reference.name()) else {
            let own = Endpoint {
                reference: reference.clone(),
                insecure: false,
                mirror: false,
            };
            return Ok((Vec::new(), own));
        };
        if entry.blocked {
            return Err(RegistriesError::Blocked {
                reference: reference.to_string(),
                path: path.clone(),
            });
        }
        let prefix = entry.prefix();
        let moved = |location: &str| rewrite(reference, prefix, location);
        let mut endpoints = Vec::new();
        if pull && (!entry.mirror_by_digest_only || reference.digest().is_some()) {
            for mirror in &entry.mirrors {
                if let Some(reference) = moved(&mirror.location) {
                    endpoints.push(Endpoint {
                        reference,
                        insecure: mirror.insecure,
                        mirror: true,
                    });
                }
            }
        }
        let location = if entry.location.is_empty() {
            prefix
        } else {
            &entry.location
        };
        let own = Endpoint {
            reference: moved(location).unwrap_or_else(|| reference.clone()),
            insecure: entry.insecure,
            mirror: false,
        };
        Ok((endpoints, own))
    }

    /// The entry with the longest prefix that matches `name` at a component boundary.
    fn matching(&self, name: &str) -> Option<&(Entry, PathBuf)> {
        self.entries
            .iter()
            .filter(|(entry, _)| {
                let prefix = entry.prefix();
                name == prefix
                    || name
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(entry, _)| entry.prefix().len())
    }
}

impl Entry {
    /// The names this entry applies to.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(&self.location)
    }
}

/// `reference` with `prefix` replaced by `location` (tag and digest kept).
fn rewrite(reference: &Reference, prefix: &str, location: &str) -> Option<Reference> {
    let rest = reference.name().strip_prefix(prefix)?;
    let mut text = format!("{location}{rest}");
    if let Some(tag) = reference.tag() {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = reference.digest() {
        text.push('@');
        text.push_str(digest);
    }
    Reference::parse(&text).ok()
}

/// The files read, in order.
fn files() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
        return vec![PathBuf::from(path)];
    }
    let mut files = vec![PathBuf::from("/etc/containers/registries.conf")];
    if let Ok(dir) = fs_err::read_dir("/etc/containers/registries.conf.d") {
        let mut drop_ins: Vec<PathBuf> = dir
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "conf"))
            .collect();
        drop_ins.sort();
        files.extend(drop_ins);
    }
    if let Some(home) = std::env::var_os("HOME") {
        files.push(Path::new(&home).join(".config/containers/registries.conf"));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registries(text: &str) -> Registries {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.conf");
        fs_err::write(&path, text).unwrap();
        let mut registries = Registries::default();
        registries.add_file(&path).unwrap();
        registries
    }

    fn reference(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    const CONF: &str = r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "registry.example.org"
[[registry.mirror]]
location = "mirror.local:5000/example"
insecure = true
[[registry.mirror]]
location = "mirror2.local"

[[registry]]
prefix = "registry.example.org/team"
location = "team.example.org/vms"
insecure = true

[[registry]]
location = "evil.example.com"
blocked = true
"#;

    #[test]
    fn pulls_try_the_mirrors_first_then_the_location() {
        let (mut endpoints, own) = registries(CONF)
            .pull_endpoints(&reference("registry.example.org/vms/debian:12"))
            .unwrap();
        endpoints.push(own);
        let names: Vec<String> = endpoints.iter().map(|e| e.reference.to_string()).collect();
        assert_eq!(
            names,
            [
                "mirror.local:5000/example/vms/debian:12",
                "mirror2.local/vms/debian:12",
                "registry.example.org/vms/debian:12"
            ]
        );
        assert_eq!(
            endpoints
                .iter()
                .map(|e| (e.insecure, e.mirror))
                .collect::<Vec<_>>(),
            [(true, true), (false, true), (false, false)]
        );
    }

    #[test]
    fn the_longest_prefix_wins_and_moves_the_name() {
        let conf = registries(CONF);
        let endpoint = conf
            .push_endpoint(&reference("registry.example.org/team/a:1"))
            .unwrap();
        assert_eq!(endpoint.reference.to_string(), "team.example.org/vms/a:1");
        assert!(endpoint.insecure);
        // A prefix matches whole components only.
        let other = conf
            .push_endpoint(&reference("registry.example.org/teamwork/a:1"))
            .unwrap();
        assert_eq!(
            other.reference.to_string(),
            "registry.example.org/teamwork/a:1"
        );
    }

    #[test]
    fn blocked_registries_are_refused_and_others_pass() {
        let conf = registries(CONF);
        let error = conf
            .pull_endpoints(&reference("evil.example.com/x:1"))
            .unwrap_err();
        assert!(error.to_string().contains("is blocked by"), "{error}");
        let (mirrors, own) = conf.pull_endpoints(&reference("quay.io/x:1")).unwrap();
        assert!(mirrors.is_empty());
        assert_eq!(own.reference.to_string(), "quay.io/x:1");
    }

    #[test]
    fn mirrors_by_digest_only_skip_tags() {
        let conf = registries(
            "[[registry]]\nlocation = \"r.example\"\nmirror-by-digest-only = true\n\
             [[registry.mirror]]\nlocation = \"m.example\"\n",
        );
        let (tagged, _) = conf.pull_endpoints(&reference("r.example/a:1")).unwrap();
        assert!(tagged.is_empty());
        let digest = format!("r.example/a@sha256:{}", "0".repeat(64));
        assert_eq!(conf.pull_endpoints(&reference(&digest)).unwrap().0.len(), 1);
    }

    #[test]
    fn a_broken_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.conf");
        fs_err::write(&path, "[[registry]\n").unwrap();
        let error = Registries::default().add_file(&path).unwrap_err();
        assert!(error.to_string().contains("bad.conf"), "{error}");
    }
}
