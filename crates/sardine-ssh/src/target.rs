//! Where to connect and how to log in: [`Target`] and [`Auth`], with secrets kept out of logs,
//! and [`Login`], the one way `sarde ssh` and the executor make a target from what the user
//! said, what the image says and the built-in defaults.
//!
//! Only the methods listed in [`Target::auth`] are tried, in order: no ssh-agent, no default
//! keys from `~/.ssh/` (sardinecake 0.4.2 tried those first and could exhaust the server's
//! MaxAuthTries before reaching the configured password, W15).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PrivateKey;

use crate::SshError;

/// One way to authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Password authentication.
    Password(String),
    /// Public-key authentication with a private key file (OpenSSH, PEM or PKCS#8 format).
    KeyFile {
        /// The private key file.
        path: PathBuf,
        /// Its passphrase, if it is encrypted.
        passphrase: Option<String>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "<redacted>";
        match self {
            Auth::Password(_) => f.debug_tuple("Password").field(&REDACTED).finish(),
            Auth::KeyFile { path, passphrase } => f
                .debug_struct("KeyFile")
                .field("path", path)
                .field("passphrase", &passphrase.as_ref().map(|_| REDACTED))
                .finish(),
        }
    }
}

/// An SSH server to log in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (usually 22).
    pub port: u16,
    /// User to log in as.
    pub user: String,
    /// Authentication methods, tried in this order until one succeeds.
    pub auth: Vec<Auth>,
    /// The SHA-256 fingerprint (`SHA256:…`, as [`crate::Session::host_key`] reports it) the
    /// server's host key must have; any key is accepted when unset.
    pub host_key: Option<String>,
}

impl Target {
    /// This target, accepting only the host key with `fingerprint`.
    pub fn pinned(self, fingerprint: &str) -> Target {
        Target {
            host_key: Some(fingerprint.to_owned()),
            ..self
        }
    }
}

/// The SSH port when nobody names one.
pub const DEFAULT_PORT: u16 = 22;

/// The parts of a login, each of which may be unset: what the user said, what an image's
/// sardine config says, built-in defaults. [`Login::or`] fills the gaps of one from the next;
/// [`Login::target`] makes the [`Target`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    /// User to log in as.
    pub user: Option<String>,
    /// Password, tried after the keys.
    pub password: Option<String>,
    /// TCP port (22 when unset).
    pub port: Option<u16>,
    /// Private key files, or directories whose `id_*` private keys are offered (by full path).
    pub identities: Vec<PathBuf>,
}

impl Login {
    /// Takes each unset part from `fallback` (identities only if this login names none).
    pub fn or(self, fallback: Login) -> Login {
        Login {
            user: self.user.or(fallback.user),
            password: self.password.or(fallback.password),
            port: self.port.or(fallback.port),
            identities: if self.identities.is_empty() {
                fallback.identities
            } else {
                self.identities
            },
        }
    }

    /// The target at `host`: the keys first, then the password. Fails without a user, or
    /// without any way to authenticate, or when an identity directory holds no private key.
    pub fn target(self, host: &str) -> Result<Target, SshError> {
        let Some(user) = self.user else {
            return Err(SshError::NoUser {
                host: host.to_owned(),
            });
        };
        let mut auth = Vec::new();
        for identity in &self.identities {
            auth.extend(key_files(identity)?.into_iter().map(|path| Auth::KeyFile {
                path,
                passphrase: None,
            }));
        }
        auth.extend(self.password.map(Auth::Password));
        if auth.is_empty() {
            return Err(SshError::NoAuthMethod {
                user,
                host: host.to_owned(),
            });
        }
        Ok(Target {
            host: host.to_owned(),
            port: self.port.unwrap_or(DEFAULT_PORT),
            user,
            auth,
            host_key: None,
        })
    }
}

/// The key file itself, or the private keys (`id_*` without `.pub`) of a directory, sorted.
fn key_files(path: &Path) -> Result<Vec<PathBuf>, SshError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let read_error = |source| SshError::KeyRead {
        path: path.to_path_buf(),
        source,
    };
    let mut keys = Vec::new();
    for entry in fs_err::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("id_") && !name.ends_with(".pub") && entry.path().is_file() {
            keys.push(entry.path());
        }
    }
    keys.sort();
    if keys.is_empty() {
        return Err(SshError::NoKeysInDirectory {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

/// An [`Auth`] ready for use: key files are read and decoded before any network traffic, so a
/// broken key fails at once instead of after a connection (and is never retried).
pub(crate) enum Credential {
    Password(String),
    Key { path: PathBuf, key: Arc<PrivateKey> },
}

impl Credential {
    /// Short description for logs (never the secret).
    pub(crate) fn describe(&self) -> String {
        match self {
            Credential::Password(_) => "password".to_owned(),
            Credential::Key { path, .. } => format!("key {}", path.display()),
        }
    }
}

/// Reads and decodes every key file of `target`, keeping the order of `target.auth`.
pub(crate) fn load_credentials(target: &Target) -> Result<Vec<Credential>, SshError> {
    if target.auth.is_empty() {
        return Err(SshError::NoAuthMethod {
            user: target.user.clone(),
            host: target.host.clone(),
        });
    }
    target
        .auth
        .iter()
        .map(|auth| match auth {
            Auth::Password(password) => Ok(Credential::Password(password.clone())),
            Auth::KeyFile { path, passphrase } => Ok(Credential::Key {
                path: path.clone(),
                key: Arc::new(load_key(path, passphrase.as_deref())?),
            }),
        })
        .collect()
}

fn load_key(path: &Path, passphrase: Option<&str>) -> Result<PrivateKey, SshError> {
    let text = fs_err::read_to_string(path).map_err(|source| SshError::KeyRead {
        path: path.to_owned(),
        source,
    })?;
    russh::keys::decode_secret_key(&text, passphrase).map_err(|source| SshError::Key {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &str, password: Option<&str>, port: Option<u16>) -> Login {
        Login {
            user: Some(user.into()),
            password: password.map(Into::into),
            port,
            identities: Vec::new(),
        }
    }

    #[test]
    fn each_part_comes_from_the_first_login_that_has_it() {
        let said = Login {
            user: Some("admin".into()),
            ..Login::default()
        };
        let image = login("root", Some("sardine"), Some(2222));
        let target = said.or(image).target("h").unwrap();
        assert_eq!((target.user.as_str(), target.port), ("admin", 2222));
        assert_eq!(target.auth, [Auth::Password("sardine".into())]);
        let target = login("u", Some("p"), None).target("h").unwrap();
        assert_eq!(target.port, DEFAULT_PORT);
    }

    #[test]
    fn keys_come_before_the_password_and_directories_give_their_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["id_rsa", "id_ed25519", "id_ed25519.pub", "known_hosts"] {
            fs_err::write(dir.path().join(name), "x").unwrap();
        }
        let mut with_keys = login("u", Some("p"), None);
        with_keys.identities = vec![dir.path().to_path_buf()];
        let auth = with_keys.target("h").unwrap().auth;
        let key = |name: &str| Auth::KeyFile {
            path: dir.path().join(name),
            passphrase: None,
        };
        assert_eq!(
            auth,
            [key("id_ed25519"), key("id_rsa"), Auth::Password("p".into())]
        );
        let empty = tempfile::tempdir().unwrap();
        let mut no_keys = login("u", None, None);
        no_keys.identities = vec![empty.path().to_path_buf()];
        assert!(matches!(
            no_keys.target("h"),
            Err(SshError::NoKeysInDirectory { .. })
        ));
    }

    #[test]
    fn a_login_needs_a_user_and_a_way_in() {
        assert!(matches!(
            Login::default().target("h"),
            Err(SshError::NoUser { .. })
        ));
        assert!(matches!(
            login("u", None, None).target("h"),
            Err(SshError::NoAuthMethod { .. })
        ));
    }

    #[test]
    fn debug_redacts_password_and_passphrase() {
        let auth = vec![
            Auth::Password("hunter2".into()),
            Auth::KeyFile {
                path: "/k/id_ed25519".into(),
                passphrase: Some("s3cret".into()),
            },
        ];
        let text = format!("{auth:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("/k/id_ed25519"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn missing_key_file_is_a_key_read_error_naming_the_file() {
        let target = Target {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            auth: vec![Auth::KeyFile {
                path: "/nonexistent/sardine-key".into(),
                passphrase: None,
            }],
            host_key: None,
        };
        let err = load_credentials(&target).err();
        assert!(
            matches!(&err, Some(SshError::KeyRead { path, .. }) if path == Path::new("/nonexistent/sardine-key")),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_key_file_is_a_key_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-key");
        fs_err::write(&path, "hello").unwrap();
        let target = Target {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            auth: vec![Auth::KeyFile {
                path,
                passphrase: None,
            }],
            host_key: None,
        };
        let err = load_credentials(&target).err();
        assert!(matches!(err, Some(SshError::Key { .. })), "{err:?}");
    }

    #[test]
    fn no_auth_method_is_an_error() {
        let target = Target {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            auth: vec![],
            host_key: None,
        };
        let err = load_credentials(&target).err();
        assert!(
            matches!(err, Some(SshError::NoAuthMethod { .. })),
            "{err:?}"
        );
    }
}
