//! Logging in: one bounded attempt ([`Session::connect`]) or retries while the guest boots
//! ([`Session::connect_with_retry`]).
//!
//! Host keys are accepted without verification and their fingerprint is logged at debug
//! level. Guests are throwaway clones that generate new host keys on every boot and get their
//! addresses from DHCP, so the same IP keeps showing up with different keys: checking
//! `known_hosts` would turn every reused address into a spurious "host key changed" failure
//! (sardinecake 0.4.2's W15). The connection never leaves the host's private guest network.

use std::sync::Arc;
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
    pub(crate) handle: Handle<AcceptAnyHostKey>,
    pub(crate) host: String,
    pub(crate) port: u16,
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
        let handle = handshake(target).await?;
        authenticate(target, handle, credentials).await
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

/// TCP connect and SSH key exchange.
async fn handshake(target: &Target) -> Result<Handle<AcceptAnyHostKey>, SshError> {
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
    let handler = AcceptAnyHostKey {
        host: target.host.clone(),
    };
    client::connect_stream(Arc::new(config), stream, handler)
        .await
        .map_err(|source| handshake_error(target, source))
}

/// Tries each credential in order; the first success wins.
async fn authenticate(
    target: &Target,
    mut handle: Handle<AcceptAnyHostKey>,
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
async fn rsa_hash(
    handle: &Handle<AcceptAnyHostKey>,
    key: &russh::keys::PrivateKey,
) -> Option<HashAlg> {
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

/// russh client handler that accepts any host key (see the module documentation).
pub(crate) struct AcceptAnyHostKey {
    host: String,
}

impl client::Handler for AcceptAnyHostKey {
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
        };
        debug!(host = %self.host, %fingerprint, "accepting the guest's host key without verification (throwaway guest)");
        Ok(true)
    }
}
