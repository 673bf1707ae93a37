//! How fetch and push reach a registry: one [`RegistryAccess`] that both binaries fill, the
//! client made from it, and where `registries.conf` sends a reference (mirrors to pull from,
//! another location, plain http, blocked: [`sardine_oci::registries`]).

use sardine_oci::credentials;
use sardine_oci::reference::Reference;
use sardine_oci::registries::{Endpoint, Registries};
use sardine_oci::registry::{ClientOptions, Credentials, RegistryClient};

use crate::error::ImageError;

/// The registry of references that name none (as docker and the executor's images assume).
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// How to talk to a registry.
#[derive(Debug, Clone)]
pub struct RegistryAccess {
    /// Plain http instead of https (see [`ClientOptions::insecure`]).
    pub insecure: bool,
    /// Verify the registry's TLS certificate ([`ClientOptions::tls_verify`]).
    pub tls_verify: Option<bool>,
    /// The registry's certificate directory ([`ClientOptions::cert_dir`]).
    pub cert_dir: Option<std::path::PathBuf>,
    /// The credentials to use; `None`: those stored for the registry (auth file, credential
    /// helpers, environment), else anonymous.
    pub credentials: Option<Credentials>,
    /// How many blobs are transferred at the same time.
    pub concurrency: usize,
    /// `Some(n)`: uploads go in chunks of `n` bytes (see [`ClientOptions::upload_chunk_size`]).
    pub upload_chunk_size: Option<u64>,
}

impl Default for RegistryAccess {
    fn default() -> Self {
        RegistryAccess {
            insecure: false,
            tls_verify: None,
            cert_dir: None,
            credentials: None,
            concurrency: sardine_oci::transfer::TransferOptions::default().concurrency,
            upload_chunk_size: None,
        }
    }
}

/// A client for `registry` with the credentials of `access`.
pub(crate) fn client(
    registry: &str,
    access: &RegistryAccess,
) -> Result<RegistryClient, ImageError> {
    let credentials = match &access.credentials {
        Some(given) => Some(given.clone()),
        None => credentials::lookup(registry).map_err(|source| ImageError::Credentials {
            registry: registry.to_owned(),
            source,
        })?,
    };
    tracing::debug!(
        registry,
        authenticated = credentials.is_some(),
        insecure = access.insecure,
        "registry client"
    );
    let options = ClientOptions {
        insecure: access.insecure,
        tls_verify: access.tls_verify,
        cert_dir: access.cert_dir.clone(),
        credentials,
        upload_chunk_size: access.upload_chunk_size,
        ..ClientOptions::default()
    };
    Ok(RegistryClient::new(registry, options)?)
}

/// Where to pull `reference` from (mirrors to try first, then its location), by the system's
/// registries.conf.
pub(crate) fn pull_endpoints(
    reference: &Reference,
) -> Result<(Vec<Endpoint>, Endpoint), ImageError> {
    Ok(Registries::load()?.pull_endpoints(reference)?)
}

/// Where to push `reference`, by the system's registries.conf.
pub(crate) fn push_endpoint(reference: &Reference) -> Result<Endpoint, ImageError> {
    Ok(Registries::load()?.push_endpoint(reference)?)
}

/// `access` for `endpoint`: plain http if registries.conf says so; a mirror gets neither the
/// credentials nor the certificate directory given for the image's own registry (its own
/// are looked up).
pub(crate) fn endpoint_access(access: &RegistryAccess, endpoint: &Endpoint) -> RegistryAccess {
    let mut access = access.clone();
    access.insecure |= endpoint.insecure;
    if endpoint.mirror {
        access.credentials = None;
        access.cert_dir = None;
    }
    access
}
