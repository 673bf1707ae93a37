//! Registry authentication: `WWW-Authenticate` challenges, Basic credentials and cached Bearer tokens.
//!
//! Secrets only ever live in [`reqwest::header::HeaderValue`]s marked sensitive and in the token
//! cache; nothing here formats them into logs or errors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderValue;

use super::Credentials;

/// How long a token without `expires_in` is valid (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest a token is kept, whatever its endpoint says (a day; it is fetched again after).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A token is renewed this long before it expires, so it does not expire mid-request.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Send the username and password with every request.
    Basic,
    /// Fetch a token from `realm` and send it as `Authorization: Bearer`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first Basic or Bearer challenge in a `WWW-Authenticate` header value.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: param("realm")?,
            service: param("service"),
            scope: param("scope"),
        })
    } else {
        None
    }
}

/// Splits `key=value, key="quoted, value"` into pairs; backslash escapes inside quotes are honoured.
fn parse_params(input: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            return pairs;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            value
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned()
        };
        pairs.push((key.trim().to_owned(), value));
    }
}

/// The `Authorization` value for Basic authentication, marked sensitive.
pub(crate) fn basic_header(creds: &Credentials) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    sensitive_header(&format!("Basic {encoded}"))
}

/// The `Authorization` value for a Bearer token, marked sensitive.
pub(crate) fn bearer_header(token: &str) -> HeaderValue {
    sensitive_header(&format!("Bearer {token}"))
}

fn sensitive_header(value: &str) -> HeaderValue {
    // A value with bytes that are invalid in a header cannot be sent; an empty (invalid) one makes
    // the registry answer 401, which is reported as such.
    let mut header = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}

/// The JSON answer of a token endpoint.
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token (`token` is preferred over `access_token`, as docker does) and how long it is valid.
    pub(crate) fn into_token(self) -> Option<(String, Duration)> {
        // Capped: `Instant::now() + lifetime` must not overflow whatever a token endpoint says.
        let lifetime = self
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
            .min(MAX_TOKEN_LIFETIME);
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        Some((token, lifetime))
    }
}

/// What the client has learned about a registry's authentication.
#[derive(Default)]
pub(crate) struct AuthCache {
    /// The registry asked for Basic authentication: send credentials up front.
    basic: bool,
    /// Bearer tokens by the scopes they were issued for.
    tokens: HashMap<String, (HeaderValue, Instant)>,
}

impl AuthCache {
    /// The `Authorization` header to send with a request for `scopes`, if one is known.
    pub(crate) fn header_for(
        &self,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Option<HeaderValue> {
        if self.basic {
            return creds.map(basic_header);
        }
        let (header, expires) = self.tokens.get(&scope_key(scopes))?;
        (Instant::now() < *expires).then(|| header.clone())
    }

    pub(crate) fn set_basic(&mut self) {
        self.basic = true;
    }

    pub(crate) fn store_token(&mut self, scopes: &[String], token: &str, lifetime: Duration) {
        let expires = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        self.tokens
            .insert(scope_key(scopes), (bearer_header(token), expires));
    }
}

fn scope_key(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// The scope for reading from a repository.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

/// The scope for reading from and writing to a repository.
pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.org/token",service="registry.example.org",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.org/token".into(),
                service: Some("registry.example.org".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn parses_bearer_without_service_and_unquoted_values() {
        let c = parse_challenge("bearer realm=http://127.0.0.1:5000/token , error=invalid_token");
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5000/token".into(),
                service: None,
                scope: None
            })
        );
    }

    #[test]
    fn parses_basic_and_escapes() {
        assert_eq!(
            parse_challenge(r#"Basic realm="te\"st""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_params(r#"realm="te\"st""#),
            vec![("realm".to_owned(), "te\"st".to_owned())]
        );
    }

    #[test]
    fn rejects_unknown_or_incomplete_challenges() {
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn token_response_prefers_token() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"access_token":"b","token":"a","expires_in":300}"#).unwrap();
        assert_eq!(r.into_token(), Some(("a".into(), Duration::from_secs(300))));
        let r: TokenResponse = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        assert_eq!(r.into_token(), Some(("b".into(), DEFAULT_TOKEN_LIFETIME)));
        let r: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(r.into_token(), None);
    }

    #[test]
    fn a_huge_expires_in_is_capped_and_cached_without_overflow() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        let (token, lifetime) = r.into_token().unwrap();
        assert_eq!(lifetime, MAX_TOKEN_LIFETIME);
        let mut cache = AuthCache::default();
        let scopes = vec![pull_scope("a")];
        cache.store_token(&scopes, &token, lifetime);
        assert!(cache.header_for(&scopes, None).is_some());
    }

    #[test]
    fn cache_returns_tokens_per_scope_and_marks_them_sensitive() {
        let mut cache = AuthCache::default();
        let scopes = vec![pull_scope("a")];
        cache.store_token(&scopes, "tok", Duration::from_secs(300));
        let header = cache.header_for(&scopes, None).unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Bearer tok");
        assert!(cache.header_for(&[push_scope("a")], None).is_none());
        cache.store_token(&scopes, "old", Duration::from_secs(5));
        assert!(
            cache.header_for(&scopes, None).is_none(),
            "a token about to expire is not used"
        );
    }

    #[test]
    fn basic_mode_sends_credentials() {
        let mut cache = AuthCache::default();
        cache.set_basic();
        let creds = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        let header = cache.header_for(&[], Some(&creds)).unwrap();
        assert_eq!(header.to_str().unwrap(), "Basic dXNlcjpwYXNz");
        assert!(cache.header_for(&[], None).is_none());
    }
}
