//! Logging in: one bounded attempt ([`Session::connect`]) or retries while the guest boots
//! ([`Session::connect_with_retry`]).
//!
//! Host keys are not checked against `known_hosts`: guests are throwaway clones that may make
//! new host keys on every boot and get their addresses from DHCP, so the same IP keeps showing
//! up with different keys, and `known_hosts` would turn every reused address into a spurious
//! "host key changed" failure (sardinecake 0.4.2's W15). Instead a session reports the key it
//! saw ([`Session::host_key`]) and a [`Target`] may pin one ([`Target::host_key`]): the
//! executor pins the key of its first login for the rest of the job, so a machine that takes
//! over the guest's address later is refused. The check is part of the key exchange, so a
//! refused server never receives a password or a key signature.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::target::{Credential, load_credentials};
use crate::{SshError, Target};

/// Pause between two attempts of [`Session::connect_with_retry`].
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Upper bound for one attempt of [`Session::connect_with_retry`].
const RETRY_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Keepalives detect a guest that vanished during a long, silent job.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_MAX: usize = 4;

/// An authenticated SSH connection to a guest. Run commands with [`Session::exec`] and friends;
/// several commands may run at the same time on one session.
pub struct Session {
    pub(crate) handle: Handle<HostKeyCheck>,
    pub(crate) host: String,
    pub(crate) port: u16,
    host_key: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Makes one attempt to connect and log in, bounded by `timeout` (TCP connect, handshake
    /// and authentication together). The methods of `target.auth` are tried in order.
    pub async fn connect(target: &Target, timeout: Duration) -> Result<Session, SshError> {
        let credentials = load_credentials(target)?;
        connect_once(target, &credentials, timeout).await
    }

    /// Like [`Session::connect`], but tries again every 500 ms while the failure is one a
    /// booting guest produces (see [`SshError::is_retryable`]), until `deadline` has elapsed.
    /// SSH servers often start a while after the guest got its DHCP lease. A rejected login
    /// is not retried: it fails at once with [`SshError::AuthFailed`].
    pub async fn connect_with_retry(
        target: &Target,
        deadline: Duration,
    ) -> Result<Session, SshError> {
        let credentials = load_credentials(target)?;
        let start = Instant::now();
        let give_up_at = start + deadline;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = give_up_at.saturating_duration_since(Instant::now());
            let attempt_timeout = remaining.clamp(RETRY_INTERVAL, RETRY_ATTEMPT_TIMEOUT);
            let err = match connect_once(target, &credentials, attempt_timeout).await {
                Ok(session) => return Ok(session),
                Err(err) if !err.is_retryable() => return Err(err),
                Err(err) => err,
            };
            debug!(host = %target.host, port = target.port, attempts, error = %err, "SSH not ready yet");
            if Instant::now() + RETRY_INTERVAL >= give_up_at {
                return Err(SshError::GaveUp {
                    host: target.host.clone(),
                    port: target.port,
                    attempts,
                    waited: start.elapsed(),
                    last: Box::new(err),
                });
            }
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }

    /// The SHA-256 fingerprint of the server's host key (`SHA256:…`), to pin with
    /// [`Target::pinned`] for later logins.
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// Ends the session politely (SSH disconnect message).
    pub async fn close(self) -> Result<(), SshError> {
        self.handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .map_err(SshError::Protocol)
    }
}

/// One attempt, bounded by `timeout`.
async fn connect_once(
    target: &Target,
    credentials: &[Credential],
    timeout: Duration,
) -> Result<Session, SshError> {
    let attempt = async {
        let (handle, host_key) = handshake(target).await?;
        authenticate(target, handle, host_key, credentials).await
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(SshError::Timeout {
                host: target.host.clone(),
                port: target.port,
                timeout,
            })
        })
}

/// TCP connect and SSH key exchange; returns the host key's fingerprint too.
async fn handshake(target: &Target) -> Result<(Handle<HostKeyCheck>, String), SshError> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| SshError::Connect {
            host: target.host.clone(),
            port: target.port,
            source,
        })?;
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "could not disable Nagle's algorithm");
    }
    let config = client::Config {
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        ..client::Config::default()
    };
    let seen = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        host: target.host.clone(),
        expected: target.host_key.clone(),
        seen: Arc::clone(&seen),
    };
    let result = client::connect_stream(Arc::new(config), stream, handler).await;
    let seen = seen.lock().map_or(None, |seen| seen.clone());
    match (result, seen) {
        (Ok(handle), Some(seen)) => Ok((handle, seen)),
        (Err(_), Some(seen)) if target.host_key.as_ref().is_some_and(|e| *e != seen) => {
            Err(SshError::HostKeyChanged {
                host: target.host.clone(),
                port: target.port,
                expected: target.host_key.clone().unwrap_or_default(),
                seen,
            })
        }
        (Err(source), _) => Err(handshake_error(target, source)),
        // russh checks the server key before it completes the handshake.
        (Ok(_), None) => Err(handshake_error(target, russh::Error::UnknownKey)),
    }
}

/// Tries each credential in order; the first success wins.
async fn authenticate(
    target: &Target,
    mut handle: Handle<HostKeyCheck>,
    host_key: String,
    credentials: &[Credential],
) -> Result<Session, SshError> {
    for credential in credentials {
        let result = match credential {
            Credential::Password(password) => {
                handle
                    .authenticate_password(target.user.as_str(), password.as_str())
                    .await
            }
            Credential::Key { key, .. } => {
                let hash_alg = rsa_hash(&handle, key).await;
                let key = PrivateKeyWithHashAlg::new(Arc::clone(key), hash_alg);
                handle
                    .authenticate_publickey(target.user.as_str(), key)
                    .await
            }
        }
        .map_err(|source| handshake_error(target, source))?;
        if result.success() {
            debug!(host = %target.host, user = %target.user, method = %credential.describe(), "SSH login succeeded");
            return Ok(Session {
                handle,
                host: target.host.clone(),
                port: target.port,
                host_key,
            });
        }
        debug!(host = %target.host, user = %target.user, method = %credential.describe(), "SSH login rejected");
    }
    // Best effort: the login failed anyway, a failing disconnect changes nothing.
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Err(SshError::AuthFailed {
        user: target.user.clone(),
        host: target.host.clone(),
    })
}

/// The signature hash to use for `key`: the server's best for RSA keys, none otherwise.
async fn rsa_hash(handle: &Handle<HostKeyCheck>, key: &russh::keys::PrivateKey) -> Option<HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    match handle.best_supported_rsa_hash().await {
        Ok(Some(best)) => best,
        // The server did not say: assume a current server (rsa-sha2-256).
        Ok(None) | Err(_) => Some(HashAlg::Sha256),
    }
}

fn handshake_error(target: &Target, source: russh::Error) -> SshError {
    SshError::Handshake {
        host: target.host.clone(),
        port: target.port,
        source,
    }
}

/// russh client handler that records the server's host key and accepts it if the target
/// pinned no key or this one (see the module documentation).
pub(crate) struct HostKeyCheck {
    host: String,
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fingerprint = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(cert) => {
                cert.public_key().fingerprint(HashAlg::Sha256)
            }
        }
        .to_string();
        let accepted = self.expected.as_ref().is_none_or(|e| *e == fingerprint);
        debug!(host = %self.host, %fingerprint, pinned = ?self.expected, accepted, "the guest's host key");
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fingerprint);
        }
        Ok(accepted)
    }
}
