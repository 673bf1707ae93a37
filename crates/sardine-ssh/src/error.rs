//! The error type of this crate, and which errors are worth retrying while a guest boots.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while connecting to a guest or running a command on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// The TCP connection could not be made (refused, unreachable, reset...).
    #[error("could not connect to {host}:{port}; is the guest up and its SSH server running?")]
    Connect {
        /// The guest's host name or address.
        host: String,
        /// The SSH port.
        port: u16,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// One connection attempt (TCP connect, handshake and authentication) took too long.
    #[error("connecting to {host}:{port} did not finish within {timeout:?}")]
    Timeout {
        /// The guest's host name or address.
        host: String,
        /// The SSH port.
        port: u16,
        /// How long one attempt may take.
        timeout: Duration,
    },

    /// `connect_with_retry` kept failing with retryable errors until its deadline.
    #[error("no SSH login to {host}:{port} after {attempts} attempts in {waited:?}")]
    GaveUp {
        /// The guest's host name or address.
        host: String,
        /// The SSH port.
        port: u16,
        /// How many attempts were made.
        attempts: u32,
        /// How long they took together.
        waited: Duration,
        /// The last attempt's error.
        #[source]
        last: Box<SshError>,
    },

    /// The SSH handshake (version exchange, key exchange, authentication requests) failed.
    #[error("SSH handshake with {host}:{port} failed")]
    Handshake {
        /// The guest's host name or address.
        host: String,
        /// The SSH port.
        port: u16,
        /// The SSH library's error.
        #[source]
        source: russh::Error,
    },

    /// The server's host key is not the one the target pinned: another machine answers at the
    /// guest's address (or the guest's keys changed). Nothing was sent to it: the key is
    /// checked during the key exchange, before any password or key signature.
    #[error("the SSH server at {host}:{port} has host key {seen}, not the pinned {expected}")]
    HostKeyChanged {
        /// The guest's host name or address.
        host: String,
        /// The SSH port.
        port: u16,
        /// The pinned fingerprint.
        expected: String,
        /// The fingerprint the server presented.
        seen: String,
    },

    /// The server rejected every authentication method we were given.
    #[error("SSH authentication as '{user}' on {host} failed")]
    AuthFailed {
        /// The user name.
        user: String,
        /// The guest's host name or address.
        host: String,
    },

    /// Nobody named a user to log in as.
    #[error("no user to log in as on {host}")]
    NoUser {
        /// The guest's host name or address.
        host: String,
    },

    /// An identity directory holds no private key.
    #[error("identity {} is a directory without private keys (id_*)", path.display())]
    NoKeysInDirectory {
        /// The directory.
        path: PathBuf,
    },

    /// The target lists no authentication method at all.
    #[error("no SSH authentication method configured for '{user}' on {host}")]
    NoAuthMethod {
        /// The user name.
        user: String,
        /// The guest's host name or address.
        host: String,
    },

    /// A private key file could not be read.
    #[error("could not read SSH key file {}", path.display())]
    KeyRead {
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A private key file could not be decoded (bad format or wrong passphrase).
    #[error("could not decode SSH key file {}; is it a private key, and is the passphrase right?", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// The key decoder's error.
        #[source]
        source: russh::keys::Error,
    },

    /// An SSH protocol error on an established session (opening a channel, sending data...).
    #[error("SSH protocol error on an established session")]
    Protocol(#[source] russh::Error),

    /// The server refused to run the command (the `exec` request was answered with failure).
    #[error("the SSH server refused to run the command {command:?}")]
    ExecRejected {
        /// The command.
        command: String,
    },

    /// Writing the command's output to a local writer failed.
    #[error("could not write the remote command's output locally")]
    LocalWrite(#[source] io::Error),

    /// The channel closed without an exit status or exit signal.
    #[error("the remote command ended without reporting an exit status (connection lost?)")]
    NoExitStatus,

    /// The caller cancelled the command; the remote process was sent SIGTERM.
    #[error("the remote command was cancelled")]
    Cancelled,
}

impl SshError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SshError::GaveUp { .. } => {
                Some("check that the guest booted, got an address and runs an SSH server")
            }
            SshError::AuthFailed { .. } => {
                Some("check the configured user name, password or key file")
            }
            SshError::NoUser { .. } => {
                Some("name a user, or give the image a sardine config with users")
            }
            SshError::NoAuthMethod { .. } => Some("give a password or a key file"),
            SshError::HostKeyChanged { .. } => Some(
                "another machine may hold the guest's address: check the network's DHCP leases and the VMs on it",
            ),
            _ => None,
        }
    }

    /// True for errors that are expected while a guest is still booting (nothing listens yet,
    /// the network is not up, sshd closes the connection during start-up) and that are
    /// therefore worth another attempt. Authentication and key errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            SshError::Connect { source, .. } => is_transient_io(source),
            SshError::Timeout { .. } => true,
            SshError::Handshake { source, .. } => is_transient_russh(source),
            _ => false,
        }
    }
}

/// I/O error kinds seen while a host boots or its SSH server starts.
fn is_transient_io(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | AddrNotAvailable
    )
}

/// russh errors that mean "the server went away during the handshake".
fn is_transient_russh(err: &russh::Error) -> bool {
    match err {
        russh::Error::IO(io) => is_transient_io(io),
        russh::Error::HUP
        | russh::Error::Disconnect
        | russh::Error::ConnectionTimeout
        | russh::Error::SendError
        | russh::Error::Elapsed(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_err(kind: io::ErrorKind) -> SshError {
        SshError::Connect {
            host: "10.0.0.1".into(),
            port: 22,
            source: io::Error::from(kind),
        }
    }

    fn handshake_err(source: russh::Error) -> SshError {
        SshError::Handshake {
            host: "10.0.0.1".into(),
            port: 22,
            source,
        }
    }

    #[test]
    fn booting_guest_errors_are_retryable() {
        assert!(connect_err(io::ErrorKind::ConnectionRefused).is_retryable());
        assert!(connect_err(io::ErrorKind::HostUnreachable).is_retryable());
        assert!(connect_err(io::ErrorKind::ConnectionReset).is_retryable());
        assert!(handshake_err(russh::Error::HUP).is_retryable());
        assert!(handshake_err(russh::Error::Disconnect).is_retryable());
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(handshake_err(russh::Error::IO(eof)).is_retryable());
        let timeout = SshError::Timeout {
            host: "h".into(),
            port: 22,
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.is_retryable());
    }

    #[test]
    fn permanent_errors_are_not_retryable() {
        assert!(!connect_err(io::ErrorKind::PermissionDenied).is_retryable());
        assert!(!handshake_err(russh::Error::Kex).is_retryable());
        let auth = SshError::AuthFailed {
            user: "root".into(),
            host: "h".into(),
        };
        assert!(!auth.is_retryable());
        assert!(!SshError::Cancelled.is_retryable());
        assert!(!SshError::NoExitStatus.is_retryable());
    }

    #[test]
    fn messages_name_the_host_and_keep_the_cause_as_source() {
        let err = connect_err(io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains("10.0.0.1:22"));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(
            source,
            Some(io::Error::from(io::ErrorKind::ConnectionRefused).to_string())
        );
        assert!(!err.to_string().contains(&source.unwrap_or_default()));
    }
}
