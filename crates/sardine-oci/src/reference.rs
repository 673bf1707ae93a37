//! Image references: `[host[:port]/]path/to/name[:tag][@algo:hex]`.
//!
//! Validation follows the OCI distribution rules, so every accepted name is also a safe relative
//! directory path below the ocidir: no empty components, no `.` or `..`, no absolute paths.
//! Unlike sardinecake 0.4.2 (W23), a registry with a port (`localhost:5000/vm:1`) splits correctly:
//! the tag is after the last `:` that follows the last `/`.

use std::fmt;

/// The longest repository name (registry part included) we accept, as docker does.
const MAX_NAME_LEN: usize = 255;
/// The longest tag the distribution spec allows.
const MAX_TAG_LEN: usize = 128;

/// A parsed, validated image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference or its name part is empty.
    #[error("empty image reference")]
    Empty,
    /// The name is longer than docker and registries accept.
    #[error("image name `{name}` is longer than {MAX_NAME_LEN} characters")]
    NameTooLong {
        /// The offending name.
        name: String,
    },
    /// A `/`-separated path component breaks the naming rules.
    #[error(
        "invalid component `{component}` in image name `{name}`: use lowercase letters and digits, \
         separated by single `.`, `_`, `__` or dashes (no empty, `.` or `..` components, no leading `/`)"
    )]
    InvalidComponent {
        /// The whole name.
        name: String,
        /// The component that failed.
        component: String,
    },
    /// The registry part (`host[:port]`) is malformed.
    #[error(
        "invalid registry host `{host}` in image name `{name}`: expected `hostname` or `hostname:port`"
    )]
    InvalidHost {
        /// The whole name.
        name: String,
        /// The host part.
        host: String,
    },
    /// The tag breaks the naming rules.
    #[error(
        "invalid tag `{tag}`: use up to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
    )]
    InvalidTag {
        /// The offending tag.
        tag: String,
    },
    /// The digest is not `algorithm:encoded` (or not 64 lowercase hex digits for sha256).
    #[error("invalid digest `{digest}`: expected `sha256:` followed by 64 lowercase hex digits")]
    InvalidDigest {
        /// The offending digest.
        digest: String,
    },
}

impl Reference {
    /// Parses and validates `[host[:port]/]path[:tag][@digest]`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (s, None),
        };
        let (name, tag) = split_tag(rest);
        validate_name(name)?;
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        if let Some(digest) = digest {
            validate_digest(digest)?;
        }
        Ok(Reference {
            name: name.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The name (registry and path, without tag or digest), e.g. `localhost:5000/sardines/debian`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:<hex>`), if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The registry host (and port), using docker's rule: the first of several components, if it
    /// contains `.` or `:` or is `localhost`.
    pub fn registry(&self) -> Option<&str> {
        registry_part(&self.name)
    }

    /// The name without the registry part.
    pub fn repository(&self) -> &str {
        match self.registry() {
            Some(host) => &self.name[host.len() + 1..],
            None => &self.name,
        }
    }

    /// The same name with `tag` instead of the current tag; the digest is dropped.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag)?;
        Ok(Reference {
            name: self.name.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// The same name and tag with `digest`.
    pub fn with_digest(&self, digest: &str) -> Result<Reference, ReferenceError> {
        validate_digest(digest)?;
        Ok(Reference {
            name: self.name.clone(),
            tag: self.tag.clone(),
            digest: Some(digest.to_owned()),
        })
    }

    /// The same name without tag or digest.
    pub fn without_tag_or_digest(&self) -> Reference {
        Reference {
            name: self.name.clone(),
            tag: None,
            digest: None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Splits `name[:tag]`, taking the tag after the last `:` that follows the last `/`.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    let after_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[after_slash..].rfind(':') {
        Some(i) => (&s[..after_slash + i], Some(&s[after_slash + i + 1..])),
        None => (s, None),
    }
}

/// The first component of `name` if docker would treat it as a registry host.
fn registry_part(name: &str) -> Option<&str> {
    let (first, _) = name.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// Checks a repository name (with optional registry part); valid names are safe relative paths.
pub fn validate_name(name: &str) -> Result<(), ReferenceError> {
    if name.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ReferenceError::NameTooLong {
            name: name.to_owned(),
        });
    }
    let path = match registry_part(name) {
        Some(host) => {
            if !is_valid_host(host) {
                return Err(ReferenceError::InvalidHost {
                    name: name.to_owned(),
                    host: host.to_owned(),
                });
            }
            &name[host.len() + 1..]
        }
        None => name,
    };
    validate_path(path).map_err(|err| match err {
        ReferenceError::InvalidComponent { component, .. } => ReferenceError::InvalidComponent {
            name: name.to_owned(),
            component,
        },
        other => other,
    })
}

/// Checks a repository path without a registry part (`team/vm`, as a registry's API names it):
/// `/`-separated components of the distribution spec's grammar, so valid paths are also safe
/// relative paths. The one rule for repository names: references and the registry client use it.
pub fn validate_path(path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::Empty);
    }
    match path
        .split('/')
        .find(|component| !is_valid_path_component(component))
    {
        Some(component) => Err(ReferenceError::InvalidComponent {
            name: path.to_owned(),
            component: component.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= MAX_TAG_LEN {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            tag: tag.to_owned(),
        })
    }
}

/// Checks a digest: `algorithm:encoded`; sha256 and sha512 must be lowercase hex of the right length.
pub fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let invalid = || ReferenceError::InvalidDigest {
        digest: digest.to_owned(),
    };
    let (algorithm, encoded) = digest.split_once(':').ok_or_else(invalid)?;
    let algorithm_ok = split_alnum_runs(algorithm, |c| matches!(c, '+' | '.' | '_' | '-'))
        .is_some_and(|seps| seps.iter().all(|sep| sep.len() == 1));
    let encoded_ok = !encoded.is_empty()
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'));
    let length_ok = match algorithm {
        "sha256" => is_lower_hex(encoded, 64),
        "sha512" => is_lower_hex(encoded, 128),
        _ => true,
    };
    if algorithm_ok && encoded_ok && length_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

pub use sardine_disk::sha256_hex;

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path component.
fn is_valid_path_component(component: &str) -> bool {
    let is_lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component
        .chars()
        .all(|c| is_lower_alnum(c) || matches!(c, '.' | '_' | '-'))
    {
        return false;
    }
    split_alnum_runs(component, |c| matches!(c, '.' | '_' | '-')).is_some_and(|seps| {
        seps.iter()
            .all(|sep| matches!(*sep, "." | "_" | "__") || sep.chars().all(|c| c == '-'))
    })
}

/// A hostname (RFC 1123 labels, letters of either case) with an optional numeric port.
fn is_valid_host(host: &str) -> bool {
    let (hostname, port) = match host.split_once(':') {
        Some((hostname, port)) => (hostname, Some(port)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    port_ok && hostname.split('.').all(label_ok)
}

/// Splits `s` into alternating alphanumeric runs and separator runs (`is_sep`), returning the
/// separator runs; None if `s` is empty, starts or ends with a separator.
fn split_alnum_runs(s: &str, is_sep: impl Fn(char) -> bool) -> Option<Vec<&str>> {
    let starts_ok = s.chars().next().is_some_and(|c| !is_sep(c));
    let ends_ok = s.chars().next_back().is_some_and(|c| !is_sep(c));
    if !starts_ok || !ends_ok {
        return None;
    }
    Some(
        s.split(|c: char| !is_sep(c))
            .filter(|sep| !sep.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Input, name, tag, digest, registry, repository.
    type Case<'a> = (
        String,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    /// Name, tag, digest, registry, repository.
    type Parts = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    );

    fn parts(s: &str) -> Parts {
        let r = Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (
            r.name().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(str::to_owned),
            r.registry().map(str::to_owned),
            r.repository().to_owned(),
        )
    }

    #[test]
    fn parses_valid_references() {
        let digest = format!("sha256:{HEX}");
        let cases: Vec<Case> = vec![
            ("myvm".into(), "myvm", None, None, None, "myvm"),
            (
                "myvm:latest".into(),
                "myvm",
                Some("latest"),
                None,
                None,
                "myvm",
            ),
            (
                "localhost:5000/x:y".into(),
                "localhost:5000/x",
                Some("y"),
                None,
                Some("localhost:5000"),
                "x",
            ),
            (
                "localhost:5000/x".into(),
                "localhost:5000/x",
                None,
                None,
                Some("localhost:5000"),
                "x",
            ),
            (
                "localhost/x".into(),
                "localhost/x",
                None,
                None,
                Some("localhost"),
                "x",
            ),
            (
                "registry.example.org/sardines/debian:12".into(),
                "registry.example.org/sardines/debian",
                Some("12"),
                None,
                Some("registry.example.org"),
                "sardines/debian",
            ),
            (
                "sardines/debian".into(),
                "sardines/debian",
                None,
                None,
                None,
                "sardines/debian",
            ),
            (
                format!("a/b@{digest}"),
                "a/b",
                None,
                Some(&digest),
                None,
                "a/b",
            ),
            (
                format!("h:1/a:t@{digest}"),
                "h:1/a",
                Some("t"),
                Some(&digest),
                Some("h:1"),
                "a",
            ),
            (
                "x/a.b_c__d---e:T_1.x-y".into(),
                "x/a.b_c__d---e",
                Some("T_1.x-y"),
                None,
                None,
                "x/a.b_c__d---e",
            ),
            (
                "Example.COM/vm".into(),
                "Example.COM/vm",
                None,
                None,
                Some("Example.COM"),
                "vm",
            ),
        ];
        for (input, name, tag, dig, registry, repository) in cases {
            let expected = (
                name.to_owned(),
                tag.map(str::to_owned),
                dig.map(str::to_owned),
                registry.map(str::to_owned),
                repository.to_owned(),
            );
            assert_eq!(parts(&input), expected, "{input}");
            assert_eq!(
                Reference::parse(&input).map(|r| r.to_string()).as_deref(),
                Ok(input.as_str())
            );
        }
    }

    #[test]
    fn rejects_invalid_references() {
        let bad = [
            "",
            "/abs/path",
            "a//b",
            "a/../b",
            "../a",
            "./a",
            "a/.",
            "a/",
            "UPPER",
            "a:",
            "a:-tag",
            "a:.tag",
            "a:t/b",
            "a@sha256:abc",
            "a@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "a@nocolon",
            "a@",
            "a b",
            "a..b",
            "a._b",
            "a___b",
            "-a",
            "a-",
            "host:port/a",
            "host:123456/a",
            "-h.example/a",
            "h_x.example/a",
        ];
        for input in bad {
            assert!(Reference::parse(input).is_err(), "accepted {input:?}");
        }
        let long = "a".repeat(256);
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::NameTooLong { .. })
        ));
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(matches!(
            Reference::parse(&long_tag),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn accepts_other_digest_algorithms() {
        assert!(validate_digest("sha512:abc").is_err());
        assert!(validate_digest(&format!("sha512:{HEX}{HEX}")).is_ok());
        assert!(validate_digest("blake3+x:AbC=_-").is_ok());
        assert!(validate_digest("sha++256:abc").is_err());
    }

    #[test]
    fn sha256_hex_requires_full_lowercase_hex() {
        assert_eq!(sha256_hex(&format!("sha256:{HEX}")), Some(HEX));
        assert_eq!(sha256_hex("sha256:abc"), None);
        assert_eq!(sha256_hex(&format!("sha512:{HEX}")), None);
    }

    #[test]
    fn with_tag_replaces_tag_and_drops_digest() {
        let r = Reference::parse(&format!("localhost:5000/vm:old@sha256:{HEX}")).unwrap();
        assert_eq!(
            r.with_tag("new").unwrap().to_string(),
            "localhost:5000/vm:new"
        );
        assert!(r.with_tag("../x").is_err());
        assert_eq!(r.without_tag_or_digest().to_string(), "localhost:5000/vm");
    }
}
