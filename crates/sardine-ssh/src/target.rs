//! Where to connect and how to log in: [`Target`] and [`Auth`], with secrets kept out of logs.
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
        };
        let err = load_credentials(&target).err();
        assert!(
            matches!(err, Some(SshError::NoAuthMethod { .. })),
            "{err:?}"
        );
    }
}
