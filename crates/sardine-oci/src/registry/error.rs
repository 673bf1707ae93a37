//! Errors of the registry client, and which of them are worth retrying.

use std::path::PathBuf;

use reqwest::StatusCode;

/// What went wrong while talking to a registry.
///
/// Messages never contain credentials or tokens: request headers are never formatted.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry address given by the user cannot be used.
    #[error("invalid registry address {registry:?}: {reason} (expected \"host\" or \"host:port\")")]
    InvalidRegistry {
        /// The address as given.
        registry: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The registry refused our credentials (or anonymous access) for this request.
    #[error("registry {registry} refused access (HTTP {status}) to {action}")]
    Unauthorized {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// The HTTP status (401 or 403).
        status: u16,
        /// The request that was refused, in words.
        action: String,
    },

    /// The manifest, tag, blob or repository does not exist.
    #[error("{what} not found on registry {registry}")]
    NotFound {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// What was looked for.
        what: String,
    },

    /// Downloaded or served content does not hash to the digest it was requested by.
    #[error(
        "content of {digest} is corrupt: its digest is {actual}; the download was discarded, try again"
    )]
    DigestMismatch {
        /// The digest the content was requested by.
        digest: String,
        /// The digest of the content that arrived.
        actual: crate::Digest,
    },

    /// The registry sent (or announced) more data than allowed.
    #[error("{what} from registry {registry} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// What was too large.
        what: String,
        /// The limit, in bytes.
        limit: u64,
    },

    /// The registry answered with an unexpected HTTP status.
    #[error("registry {registry} answered HTTP {status} to {action}: {body}")]
    Http {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// The request, in words (for example `pull of the manifest team/vm:1`).
        action: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },

    /// The registry answered, but the answer violates the distribution protocol.
    #[error("registry {registry} sent an invalid answer to {action}: {reason}")]
    Protocol {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// The request, in words (for example `pull of the manifest team/vm:1`).
        action: String,
        /// What is wrong with the answer.
        reason: String,
    },

    /// The connection failed, timed out or broke off.
    #[error("could not talk to registry {registry} ({action})")]
    Transport {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// The request, in words (for example `pull of the manifest team/vm:1`).
        action: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// A certificate file of the registry's certificate directory cannot be used.
    #[error("cannot use the certificate {path} for registry {registry}")]
    Certificate {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: reqwest::Error,
    },

    /// The response body ended before the announced size was reached.
    #[error(
        "registry {registry} closed the download of {digest} after {received} of {expected} bytes"
    )]
    Truncated {
        /// The registry's address (`host[:port]`).
        registry: String,
        /// The blob being downloaded.
        digest: crate::Digest,
        /// How many bytes arrived.
        received: u64,
        /// How many bytes were announced.
        expected: u64,
    },

    /// A local file could not be read or written.
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The local blob file does not have the size the caller announced.
    #[error("blob file {path} has {actual} bytes, but {expected} were expected for {digest}")]
    SizeMismatch {
        /// The blob file.
        path: PathBuf,
        /// The blob's digest.
        digest: crate::Digest,
        /// The size the caller announced.
        expected: u64,
        /// The file's size.
        actual: u64,
    },

    /// A repository name or tag is malformed.
    #[error("invalid {what} name {name:?}")]
    InvalidName {
        /// What kind of name (`repository` or `tag`).
        what: &'static str,
        /// The name as given.
        name: String,
    },

    /// A digest string is malformed or uses an unsupported algorithm (only sha256 is supported).
    #[error(transparent)]
    InvalidDigest(#[from] crate::InvalidDigest),
}

impl RegistryError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            RegistryError::Unauthorized { .. } => Some("check the credentials for the registry"),
            RegistryError::Transport { source, .. } if is_certificate_error(source) => Some(
                "if your own CA signed the registry's certificate, put it in \
                 /etc/containers/certs.d/<host:port>/ca.crt (or the certificate directory given \
                 for the registry); skipping TLS verification is the last resort",
            ),
            _ => None,
        }
    }

    /// Whether content did not match its digest or declared size (a corrupt or tampered
    /// download, or a local blob that changed).
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            RegistryError::DigestMismatch { .. }
                | RegistryError::SizeMismatch { .. }
                | RegistryError::TooLarge { .. }
        )
    }

    /// Whether repeating the same operation later may succeed (network trouble, overloaded registry).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { source, .. } => is_transient_transport(source),
            RegistryError::Http { status, .. } => {
                StatusCode::from_u16(*status).is_ok_and(is_transient_status)
            }
            RegistryError::Truncated { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Statuses after which the same request is retried: server errors, timeouts and rate limits.
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Connection-level failures that a new attempt may not see again.
///
/// A body that breaks off while being read shows up as a decode error wrapping a body error.
pub(crate) fn is_transient_transport(err: &reqwest::Error) -> bool {
    if is_certificate_error(err) {
        return false;
    }
    if err.is_connect() || err.is_timeout() || err.is_request() || err.is_body() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if inner
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_body)
        {
            return true;
        }
        source = inner.source();
    }
    false
}

/// Whether the TLS handshake failed over the server's certificate (no new attempt helps).
fn is_certificate_error(err: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(inner) = source {
        if inner
            .to_string()
            .to_ascii_lowercase()
            .contains("certificate")
        {
            return true;
        }
        source = inner.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> RegistryError {
        RegistryError::Http {
            registry: "r".into(),
            action: "a".into(),
            status,
            body: String::new(),
        }
    }

    #[test]
    fn transient_statuses() {
        assert!(http(503).is_transient());
        assert!(http(500).is_transient());
        assert!(http(429).is_transient());
        assert!(http(408).is_transient());
        assert!(!http(400).is_transient());
        assert!(!http(404).is_transient());
    }

    #[test]
    fn permanent_errors() {
        let e = RegistryError::DigestMismatch {
            digest: "sha256:aa".into(),
            actual: crate::Digest::of(b"bb"),
        };
        assert!(!e.is_transient());
        let e = RegistryError::Unauthorized {
            registry: "r".into(),
            status: 401,
            action: "a".into(),
        };
        assert!(!e.is_transient());
    }
}
