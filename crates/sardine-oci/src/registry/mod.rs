//! A streaming client for the OCI distribution API (registry v2).
//!
//! Written for big blobs: uploads stream from files (monolithic `PUT` or chunked `PATCH` with a
//! fallback), downloads resume with `Range` and are verified against their digest, and every
//! request is retried with exponential backoff when the failure looks transient. Authentication
//! follows the registry's `WWW-Authenticate` challenge (Basic or Bearer tokens cached per scope).

mod auth;
mod download;
mod error;
pub mod tls;
mod upload;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use tracing::{debug, warn};

pub use error::RegistryError;

use crate::Digest;
use crate::reference;
use auth::{AuthCache, Challenge, pull_scope, push_scope};
use error::{is_transient_status, is_transient_transport};

/// The largest manifest accepted or sent (the limit containerd and the distribution registry use).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// Manifest media types this client asks for.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Redirects followed per request (reqwest's default).
const MAX_REDIRECTS: usize = 10;
/// The longest wait a `Retry-After` header can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest wait between two attempts without `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an error response body is shown in an error message.
const ERROR_BODY_EXCERPT: usize = 300;

/// A manifest or index as a registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The raw bytes (the digest covers exactly these).
    pub body: Vec<u8>,
    /// Its media type, from the answer's `Content-Type` or the document itself.
    pub media_type: String,
    /// The digest of `body`.
    pub digest: Digest,
}

/// A username and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How a [`RegistryClient`] talks to its registry.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Use plain http instead of https (done for loopback addresses too, unless they have a
    /// certificate directory or `tls_verify` is given).
    pub insecure: bool,
    /// `Some(true)`: https with the certificate verified, loopback addresses included;
    /// `Some(false)`: https without verification (as `--tls-verify` of skopeo and podman);
    /// `None`: verified https, but plain http for loopback addresses without a certificate
    /// directory.
    pub tls_verify: Option<bool>,
    /// The registry's certificate directory (CAs, client certificate); `None`: its
    /// directory under the certs.d roots, if any ([`tls::cert_dir_of`]).
    pub cert_dir: Option<std::path::PathBuf>,
    /// Credentials for Basic authentication or for requesting Bearer tokens; `None` is anonymous.
    pub credentials: Option<Credentials>,
    /// How often a transient failure (connection error, 5xx, 408, 429) is retried.
    pub max_retries: u32,
    /// `None` uploads each blob with one streamed `PUT`; `Some(n)` uploads `PATCH` chunks of `n`
    /// bytes and falls back to one `PUT` when the registry rejects chunked uploads.
    pub upload_chunk_size: Option<u64>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The first retry waits about this long; each further retry waits twice as long (plus jitter).
    pub retry_base_delay: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            tls_verify: None,
            cert_dir: None,
            credentials: None,
            max_retries: 5,
            upload_chunk_size: None,
            user_agent: concat!("sardinecake/", env!("CARGO_PKG_VERSION")).to_owned(),
            retry_base_delay: Duration::from_millis(500),
        }
    }
}

/// Whether a request may be sent again when it fails transiently.
///
/// Upload requests must not be: the registry may already have consumed part of their body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Transient,
    Never,
}

/// A client for one registry. Cheap to clone; clones share connections and cached tokens.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The registry as the user named it, for messages.
    registry: String,
    /// `scheme://host[:port]/v2/`.
    base: Url,
    opts: ClientOptions,
    auth: Mutex<AuthCache>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.inner.registry)
            .field("base", &self.inner.base.as_str())
            .finish()
    }
}

impl RegistryClient {
    /// Creates a client for `registry` ("host" or "host:port").
    ///
    /// The scheme is https, or plain http when `opts.insecure` is set or the host is a loopback
    /// address (like docker) that has no certificate directory and `tls_verify` is not given. CAs and a client certificate come from the registry's certificate
    /// directory ([`tls`]). `docker.io` is reached at `registry-1.docker.io`.
    pub fn new(registry: &str, opts: ClientOptions) -> Result<Self, RegistryError> {
        let host = validate_registry(registry)?;
        let endpoint = match registry {
            "docker.io" | "index.docker.io" => "registry-1.docker.io".to_owned(),
            bare if bare.parse::<std::net::Ipv6Addr>().is_ok() => format!("[{bare}]"),
            other => other.to_owned(),
        };
        let cert_dir = tls::cert_dir_of(registry, opts.cert_dir.as_deref());
        let tls = cert_dir.is_some() || opts.tls_verify.is_some();
        let scheme = if opts.insecure || (is_loopback_host(host) && !tls) {
            "http"
        } else {
            "https"
        };
        let invalid = |reason| RegistryError::InvalidRegistry {
            registry: registry.to_owned(),
            reason,
        };
        let base = Url::parse(&format!("{scheme}://{endpoint}/v2/"))
            .map_err(|_| invalid("not a valid host name"))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(opts.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .tcp_keepalive(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::custom(no_downgrade))
            .danger_accept_invalid_certs(opts.tls_verify == Some(false));
        if let Some(dir) = &cert_dir {
            builder = tls::configure(builder, registry, dir)?;
        }
        let http = builder.build().map_err(|source| RegistryError::Transport {
            registry: registry.to_owned(),
            action: "set up the HTTP client".into(),
            source,
        })?;
        let inner = Inner {
            http,
            registry: registry.to_owned(),
            base,
            opts,
            auth: Mutex::default(),
        };
        Ok(RegistryClient {
            inner: Arc::new(inner),
        })
    }

    /// The registry this client talks to, as given to [`RegistryClient::new`].
    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    /// Checks that the registry answers the v2 API and accepts our credentials (`GET /v2/`).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let url = self.inner.base.clone();
        let action = "check the API version (GET /v2/)";
        let resp = self
            .execute(&[], action, Retry::Transient, || {
                Ok(self.inner.http.get(url.clone()))
            })
            .await?;
        self.check(resp, &[StatusCode::OK], action, || "the v2 API".to_owned())
            .await?;
        Ok(())
    }

    /// Fetches a manifest or index by tag or digest.
    ///
    /// A digest reference is verified against the content. Manifests larger than
    /// [`MAX_MANIFEST_SIZE`] are refused.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(
            repo,
            &format!("manifests/{}", checked_reference(reference)?),
        )?;
        let action = format!("fetch manifest {repo}:{reference}");
        let scopes = [pull_scope(repo)];
        let resp = self
            .execute(&scopes, &action, Retry::Transient, || {
                Ok(self
                    .inner
                    .http
                    .get(url.clone())
                    .header(ACCEPT, MANIFEST_ACCEPT))
            })
            .await?;
        let resp = self
            .check(resp, &[StatusCode::OK], &action, || {
                format!("manifest {repo}:{reference}")
            })
            .await?;
        let content_type = header_str(&resp, CONTENT_TYPE)
            .map(|t| t.split(';').next().unwrap_or("").trim().to_owned());
        let body = self
            .read_limited(
                resp,
                MAX_MANIFEST_SIZE,
                &action,
                &format!("manifest {repo}:{reference}"),
            )
            .await?;
        let digest = Digest::of(&body);
        if reference.contains(':') && reference != digest.as_str() {
            return Err(RegistryError::DigestMismatch {
                digest: reference.to_owned(),
                actual: digest,
            });
        }
        let media_type = manifest_media_type(content_type.as_deref(), &body)
            .ok_or_else(|| self.protocol(&action, "the manifest has no media type"))?;
        Ok(FetchedManifest {
            body,
            media_type,
            digest,
        })
    }

    /// Uploads a manifest under a tag or its digest and returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let url = self.url(
            repo,
            &format!("manifests/{}", checked_reference(reference)?),
        )?;
        let action = format!("upload manifest {repo}:{reference}");
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            let what = format!("manifest {repo}:{reference}");
            return Err(RegistryError::TooLarge {
                registry: self.inner.registry.clone(),
                what,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let digest = Digest::of(body);
        let body = bytes::Bytes::copy_from_slice(body);
        let scopes = [push_scope(repo)];
        let resp = self
            .execute(&scopes, &action, Retry::Transient, || {
                Ok(self
                    .inner
                    .http
                    .put(url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        let resp = self
            .check(
                resp,
                &[StatusCode::CREATED, StatusCode::OK],
                &action,
                || format!("repository {repo}"),
            )
            .await?;
        match header_str(&resp, "docker-content-digest") {
            Some(answered) if answered != digest => Err(self.protocol(
                &action,
                &format!("it stored digest {answered}, but the manifest has digest {digest}"),
            )),
            _ => Ok(digest),
        }
    }

    /// Asks whether the registry has a blob (`HEAD`); returns its size if so.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let action = format!("check for blob {digest} in {repo}");
        let scopes = [pull_scope(repo)];
        let resp = self
            .execute(&scopes, &action, Retry::Transient, || {
                Ok(self.inner.http.head(url.clone()))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self
            .check(resp, &[StatusCode::OK], &action, || {
                format!("blob {digest}")
            })
            .await?;
        // reqwest reports 0 as the length of every HEAD body, so read the header itself.
        let size = header_str(&resp, CONTENT_LENGTH).and_then(|s| s.parse().ok());
        size.map(Some)
            .ok_or_else(|| self.protocol(&action, "the answer has no Content-Length"))
    }

    /// Asks the registry to link a blob from `from_repo` into `repo` without uploading it.
    ///
    /// Returns `true` when mounted. When the registry opens an upload session instead, the session
    /// is cancelled and `false` is returned (the caller uploads the blob).
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &Digest,
        from_repo: &str,
    ) -> Result<bool, RegistryError> {
        checked_repo(from_repo)?;
        let mut url = self.url(repo, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from_repo);
        let action = format!("mount blob {digest} from {from_repo} into {repo}");
        let scopes = [push_scope(repo), pull_scope(from_repo)];
        let resp = self
            .execute(&scopes, &action, Retry::Transient, || {
                Ok(self.inner.http.post(url.clone()).header(CONTENT_LENGTH, 0))
            })
            .await?;
        let resp = self
            .check(
                resp,
                &[StatusCode::CREATED, StatusCode::ACCEPTED],
                &action,
                || format!("repository {repo}"),
            )
            .await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        let location = self.location(&resp, &action)?;
        self.cancel_upload(repo, location).await;
        Ok(false)
    }

    /// Builds `<base>/<repo>/<rest>` after checking the repository name.
    fn url(&self, repo: &str, rest: &str) -> Result<Url, RegistryError> {
        let repo = checked_repo(repo)?;
        let url = format!("{}{repo}/{rest}", self.inner.base);
        Url::parse(&url).map_err(|_| RegistryError::InvalidName {
            what: "repository",
            name: repo.to_owned(),
        })
    }

    /// Sends a request built by `make`, authenticating on demand and retrying transient failures.
    ///
    /// Returns the final response whatever its status, except that a 401 after authenticating
    /// becomes [`RegistryError::Unauthorized`].
    async fn execute<F>(
        &self,
        scopes: &[String],
        action: &str,
        retry: Retry,
        make: F,
    ) -> Result<Response, RegistryError>
    where
        F: Fn() -> Result<RequestBuilder, RegistryError> + Sync,
    {
        let cached = self.cached_auth(scopes);
        let resp = self
            .send(action, retry, || self.with_auth(make()?, cached.as_ref()))
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = header_str(&resp, WWW_AUTHENTICATE).and_then(auth::parse_challenge);
        drop(resp);
        let fresh = match challenge {
            Some(challenge) => self.authenticate(challenge, scopes, action).await?,
            None => None,
        };
        let Some(fresh) = fresh else {
            return Err(self.unauthorized(StatusCode::UNAUTHORIZED, action));
        };
        let resp = self
            .send(action, retry, || self.with_auth(make()?, Some(&fresh)))
            .await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(StatusCode::UNAUTHORIZED, action));
        }
        Ok(resp)
    }

    fn cached_auth(&self, scopes: &[String]) -> Option<HeaderValue> {
        let cache = self
            .inner
            .auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.header_for(scopes, self.inner.opts.credentials.as_ref())
    }

    /// Answers a challenge: returns the header to retry with, or `None` when we have nothing to offer.
    async fn authenticate(
        &self,
        challenge: Challenge,
        scopes: &[String],
        action: &str,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match challenge {
            Challenge::Basic => {
                let Some(creds) = &self.inner.opts.credentials else {
                    return Ok(None);
                };
                self.inner
                    .auth
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .set_basic();
                Ok(Some(auth::basic_header(creds)))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut wanted: Vec<String> = scopes.to_vec();
                if wanted.is_empty() {
                    wanted.extend(scope);
                }
                let (token, lifetime) = self
                    .fetch_token(&realm, service.as_deref(), &wanted, action)
                    .await?;
                let mut cache = self
                    .inner
                    .auth
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                cache.store_token(scopes, &token, lifetime);
                Ok(Some(auth::bearer_header(&token)))
            }
        }
    }

    /// Requests a Bearer token from the realm of a challenge.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        action: &str,
    ) -> Result<(String, Duration), RegistryError> {
        let action = format!("get a token to {action}");
        let mut url = Url::parse(realm)
            .map_err(|_| self.protocol(&action, "the token realm is not a URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(self.protocol(&action, "the token realm is not an http(s) URL"));
        }
        if url.scheme() == "http" && self.inner.base.scheme() == "https" {
            return Err(self.protocol(
                &action,
                "the registry uses https but its token realm is plain http",
            ));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        // The realm the registry named gets the credentials (that is the protocol), never over
        // plain http when the registry uses https (checked above).
        let creds = self.inner.opts.credentials.as_ref().map(auth::basic_header);
        let resp = self
            .send(&action, Retry::Transient, || {
                let request = self.inner.http.get(url.clone());
                Ok(match &creds {
                    Some(value) => request.header(AUTHORIZATION, value.clone()),
                    None => request,
                })
            })
            .await?;
        let resp = self
            .check(resp, &[StatusCode::OK], &action, || {
                "the token service".to_owned()
            })
            .await?;
        let body = self
            .read_limited(resp, 1024 * 1024, &action, "the token")
            .await?;
        let parsed: auth::TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| self.protocol(&action, "the token answer is not the expected JSON"))?;
        parsed
            .into_token()
            .ok_or_else(|| self.protocol(&action, "the token answer contains no token"))
    }

    /// Sends a request, retrying connection errors and transient statuses with backoff.
    async fn send<F>(&self, action: &str, retry: Retry, make: F) -> Result<Response, RegistryError>
    where
        F: Fn() -> Result<RequestBuilder, RegistryError>,
    {
        let mut attempt = 0;
        loop {
            let result = make()?.send().await;
            let may_retry = retry == Retry::Transient && attempt < self.inner.opts.max_retries;
            let delay = match result {
                Ok(resp) if may_retry && is_transient_status(resp.status()) => {
                    let delay = retry_after(&resp).unwrap_or_else(|| self.backoff(attempt));
                    warn!(registry = %self.inner.registry, status = resp.status().as_u16(), ?delay, "{action}: transient failure, retrying");
                    delay
                }
                Ok(resp) => return Ok(resp),
                Err(err) if may_retry && is_transient_transport(&err) => {
                    let delay = self.backoff(attempt);
                    warn!(registry = %self.inner.registry, error = %err, ?delay, "{action}: connection failed, retrying");
                    delay
                }
                Err(source) => return Err(self.transport(action, source)),
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The wait before retry number `attempt + 1`: exponential, capped, with jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        backoff_delay(
            self.inner.opts.retry_base_delay,
            attempt,
            rand::rng().random_range(0.5..=1.0),
        )
    }

    /// Returns the response if its status is one of `ok`, else the matching error.
    async fn check<W>(
        &self,
        resp: Response,
        ok: &[StatusCode],
        action: &str,
        what: W,
    ) -> Result<Response, RegistryError>
    where
        W: FnOnce() -> String,
    {
        let status = resp.status();
        if ok.contains(&status) {
            return Ok(resp);
        }
        match status {
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                registry: self.inner.registry.clone(),
                what: what(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(self.unauthorized(status, action))
            }
            _ => Err(self.http_error(resp, action).await),
        }
    }

    /// Turns an unexpected response into [`RegistryError::Http`] with an excerpt of its body.
    async fn http_error(&self, resp: Response, action: &str) -> RegistryError {
        let status = resp.status().as_u16();
        let body = match self
            .read_limited(resp, 16 * 1024, action, "the error answer")
            .await
        {
            Ok(body) => error_excerpt(&body),
            Err(_) => "(the answer body could not be read)".to_owned(),
        };
        RegistryError::Http {
            registry: self.inner.registry.clone(),
            action: action.to_owned(),
            status,
            body,
        }
    }

    /// Reads a whole (small) response body, refusing more than `limit` bytes.
    async fn read_limited(
        &self,
        mut resp: Response,
        limit: u64,
        action: &str,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::TooLarge {
            registry: self.inner.registry.clone(),
            what: what.to_owned(),
            limit,
        };
        if header_str(&resp, CONTENT_LENGTH)
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|len| len > limit)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|source| self.transport(action, source))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The `Location` of an upload session, resolved against the registry URL (query kept).
    /// A location that would leave https for plain http is refused.
    fn location(&self, resp: &Response, action: &str) -> Result<Url, RegistryError> {
        let location = header_str(resp, LOCATION)
            .ok_or_else(|| self.protocol(action, "the answer has no Location header"))?;
        resolve_location(&self.inner.base, location).map_err(|what| self.protocol(action, what))
    }

    /// `builder` with `auth` if it goes to the registry's own origin, else as it is.
    fn with_auth(
        &self,
        builder: RequestBuilder,
        auth: Option<&HeaderValue>,
    ) -> Result<RequestBuilder, RegistryError> {
        let Some(value) = auth else {
            return Ok(builder);
        };
        let (client, request) = builder.build_split();
        let mut request = request.map_err(|source| RegistryError::Transport {
            registry: self.inner.registry.clone(),
            action: "build a request".into(),
            source,
        })?;
        if same_origin(request.url(), &self.inner.base) {
            request.headers_mut().insert(AUTHORIZATION, value.clone());
        } else {
            tracing::debug!(url = %request.url(), "no credentials for another origin");
        }
        Ok(RequestBuilder::from_parts(client, request))
    }

    /// Cancels an upload session; failures only matter to the registry's garbage collector.
    async fn cancel_upload(&self, repo: &str, location: Url) {
        let action = format!("cancel an upload session in {repo}");
        let scopes = [push_scope(repo)];
        match self
            .execute(&scopes, &action, Retry::Transient, || {
                Ok(self.inner.http.delete(location.clone()))
            })
            .await
        {
            Ok(resp) => debug!(status = resp.status().as_u16(), "{action}"),
            Err(err) => debug!(error = %err, "{action} failed"),
        }
    }

    fn unauthorized(&self, status: StatusCode, action: &str) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.inner.registry.clone(),
            status: status.as_u16(),
            action: action.to_owned(),
        }
    }

    fn protocol(&self, action: &str, reason: &str) -> RegistryError {
        RegistryError::Protocol {
            registry: self.inner.registry.clone(),
            action: action.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn transport(&self, action: &str, source: reqwest::Error) -> RegistryError {
        RegistryError::Transport {
            registry: self.inner.registry.clone(),
            action: action.to_owned(),
            source,
        }
    }
}

/// An upload `Location` resolved against the registry's URL; one that leaves https is refused.
fn resolve_location(base: &Url, location: &str) -> Result<Url, &'static str> {
    let url = base
        .join(location)
        .map_err(|_| "the Location header is not a valid URL")?;
    if base.scheme() == "https" && url.scheme() != "https" {
        return Err("the Location header leaves https for plain http");
    }
    Ok(url)
}

/// Whether `url` is on the registry's own origin (scheme, host and port): the only place
/// credentials go. An upload `Location` may name any host; it gets no `Authorization`.
fn same_origin(url: &Url, base: &Url) -> bool {
    url.origin() == base.origin()
}

/// Follows redirects (reqwest drops `Authorization` when the host or port changes), but
/// never from https to plain http.
fn no_downgrade(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let downgrade = attempt.previous().iter().any(|url| url.scheme() == "https")
        && attempt.url().scheme() != "https";
    if downgrade {
        attempt.error("a redirect from https to plain http")
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error("too many redirects")
    } else {
        attempt.follow()
    }
}

fn header_str(resp: &Response, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `Retry-After` in seconds, capped at [`MAX_RETRY_AFTER`].
fn retry_after(resp: &Response) -> Option<Duration> {
    let seconds: u64 = header_str(resp, RETRY_AFTER)?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// `base * 2^attempt`, capped at [`MAX_BACKOFF`], scaled by `jitter` (0.5..=1.0).
fn backoff_delay(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let exponential = base.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
    exponential.min(MAX_BACKOFF).mul_f64(jitter)
}

/// Checks "host" or "host:port" and returns the host part.
fn validate_registry(registry: &str) -> Result<&str, RegistryError> {
    let invalid = |reason| RegistryError::InvalidRegistry {
        registry: registry.to_owned(),
        reason,
    };
    if registry.is_empty() {
        return Err(invalid("it is empty"));
    }
    if registry.contains("://")
        || registry.contains(['/', '?', '#', '@'])
        || registry.chars().any(char::is_whitespace)
    {
        return Err(invalid(
            "it must not contain a scheme, path, user or spaces",
        ));
    }
    let host = split_host(registry);
    if host.is_empty() {
        return Err(invalid("the host name is empty"));
    }
    Ok(host)
}

/// The host part of "host", "host:port", "[v6]:port" or a bare IPv6 address.
fn split_host(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if registry.parse::<IpAddr>().is_ok() {
        return registry;
    }
    registry
        .rsplit_once(':')
        .map_or(registry, |(host, _port)| host)
}

/// Whether a host is `localhost` or a loopback IP address.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks a repository path by the rule image references follow ([`reference::validate_path`]).
fn checked_repo(repo: &str) -> Result<&str, RegistryError> {
    match reference::validate_path(repo) {
        Ok(()) => Ok(repo),
        Err(_) => Err(RegistryError::InvalidName {
            what: "repository",
            name: repo.to_owned(),
        }),
    }
}

/// Checks a tag (by the rule image references follow) or a sha256 digest.
fn checked_reference(reference: &str) -> Result<&str, RegistryError> {
    if reference.contains(':') {
        Digest::parse(reference)?;
    } else if reference::validate_tag(reference).is_err() {
        return Err(RegistryError::InvalidName {
            what: "tag",
            name: reference.to_owned(),
        });
    }
    Ok(reference)
}

/// The media type from `Content-Type`, or from the manifest's `mediaType` field when the
/// header is missing or generic.
fn manifest_media_type(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    match content_type {
        Some(t)
            if !t.is_empty()
                && t != "application/json"
                && t != "text/plain"
                && t != "application/octet-stream" =>
        {
            Some(t.to_owned())
        }
        _ => {
            #[derive(serde::Deserialize)]
            struct MediaTypeOnly {
                #[serde(rename = "mediaType")]
                media_type: Option<String>,
            }
            serde_json::from_slice::<MediaTypeOnly>(body)
                .ok()?
                .media_type
        }
    }
}

/// A one-line summary of an error body: the distribution error codes if present, else its start.
fn error_excerpt(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("?"),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ERROR_BODY_EXCERPT)
        .collect();
    if text.chars().count() > ERROR_BODY_EXCERPT {
        excerpt.push('…');
    }
    if excerpt.trim().is_empty() {
        "(empty answer)".to_owned()
    } else {
        excerpt.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_use_http() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["example.org", "10.0.0.1", "localhost.example.org"] {
            assert!(!is_loopback_host(host), "{host}");
        }
        for (registry, scheme) in [
            ("localhost:5000", "http"),
            ("127.0.0.1:5000", "http"),
            ("[::1]:5000", "http"),
            ("::1", "http"),
            ("example.org", "https"),
        ] {
            let client = RegistryClient::new(registry, ClientOptions::default()).unwrap();
            assert_eq!(client.inner.base.scheme(), scheme, "{registry}");
        }
        let insecure = ClientOptions {
            insecure: true,
            ..ClientOptions::default()
        };
        assert_eq!(
            RegistryClient::new("example.org:5000", insecure)
                .unwrap()
                .inner
                .base
                .as_str(),
            "http://example.org:5000/v2/"
        );
    }

    #[test]
    fn docker_hub_endpoint() {
        let client = RegistryClient::new("docker.io", ClientOptions::default()).unwrap();
        assert_eq!(
            client.inner.base.as_str(),
            "https://registry-1.docker.io/v2/"
        );
        assert_eq!(client.registry(), "docker.io");
    }

    #[test]
    fn rejects_bad_registry_addresses() {
        for bad in [
            "",
            "https://example.org",
            "example.org/foo",
            "user@example.org",
            "a b",
            ":5000",
        ] {
            assert!(
                matches!(
                    RegistryClient::new(bad, ClientOptions::default()),
                    Err(RegistryError::InvalidRegistry { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upload_locations_never_leave_https_and_credentials_stay_on_the_origin() {
        let base = Url::parse("https://reg.example:5000/v2/").unwrap();
        let same = resolve_location(&base, "/v2/r/blobs/uploads/1?state=x").unwrap();
        assert!(same_origin(&same, &base));
        let elsewhere = resolve_location(&base, "https://cdn.example/up/1").unwrap();
        assert!(!same_origin(&elsewhere, &base));
        assert!(resolve_location(&base, "http://reg.example:5000/v2/r/blobs/uploads/1").is_err());
        let plain = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        let other_port = resolve_location(&plain, "http://127.0.0.1:5001/x").unwrap();
        assert!(!same_origin(&other_port, &plain));
    }

    #[test]
    fn names_are_checked() {
        assert!(checked_repo("sardines/debian-12").is_ok());
        for bad in ["", "Upper", "a//b", "a/../b", "a?b", "a#b", "/a"] {
            assert!(checked_repo(bad).is_err(), "{bad:?}");
        }
        assert!(checked_reference("v1.2_3-x").is_ok());
        assert!(
            checked_reference(".hidden").is_err(),
            "the reference rule: no leading dot"
        );
        assert!(checked_reference(&format!("sha256:{}", "a".repeat(64))).is_ok());
        for bad in ["", "a/b", "sha256:xyz", "md5:00", &"a".repeat(129)] {
            assert!(checked_reference(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff_delay(base, 0, 1.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(base, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(base, 3, 0.5), Duration::from_secs(2));
        assert_eq!(backoff_delay(base, 40, 1.0), MAX_BACKOFF);
    }

    #[test]
    fn media_type_from_header_or_body() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        assert_eq!(
            manifest_media_type(Some("application/vnd.oci.image.manifest.v1+json"), body).unwrap(),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            manifest_media_type(Some("application/json"), body).unwrap(),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(
            manifest_media_type(None, body).unwrap(),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(manifest_media_type(None, b"{}"), None);
    }

    #[test]
    fn error_excerpts() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#;
        assert_eq!(
            error_excerpt(body),
            "BLOB_UNKNOWN: blob unknown to registry"
        );
        assert_eq!(error_excerpt(b"bad\ngateway"), "bad gateway");
        assert_eq!(error_excerpt(b""), "(empty answer)");
        assert!(error_excerpt(&[b'x'; 1000]).ends_with('…'));
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let creds = Credentials {
            username: "user".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{creds:?}");
        assert!(
            shown.contains("user") && !shown.contains("hunter2"),
            "{shown}"
        );
        let opts = ClientOptions {
            credentials: Some(creds),
            ..ClientOptions::default()
        };
        assert!(!format!("{opts:?}").contains("hunter2"));
    }
}
