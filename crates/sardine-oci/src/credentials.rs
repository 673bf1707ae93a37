//! Registry credentials: where `sarde` finds them and where `sarde login` stores them.
//!
//! Lookup order (the first source that knows the registry wins):
//! 1. `SARDE_REGISTRY_USERNAME` and `SARDE_REGISTRY_PASSWORD`, for the registry that
//!    `SARDE_REGISTRY` names and no other (all three must be set: credentials in the
//!    environment of a CI job must not reach whatever registry an image names);
//! 2. the containers auth file (podman/skopeo/buildah): `$REGISTRY_AUTH_FILE`, else
//!    `$XDG_RUNTIME_DIR/containers/auth.json`, else `/run/containers/<uid>/auth.json`;
//! 3. unless `$REGISTRY_AUTH_FILE` is set, `$XDG_CONFIG_HOME/containers/auth.json` (default
//!    `~/.config/containers/auth.json`), as containers-auth.json(5) reads it next;
//! 4. docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`).
//!
//! In any of these files `credHelpers[registry]` or `credsStore` name a
//! `docker-credential-<name>` helper, which gets the registry on stdin (never on the command
//! line); otherwise `auths[registry].auth` holds base64 `user:password`. Keys may also be
//! written `https://host`, `http://host` or `host/v2/`, as podman accepts.
//!
//! `sarde login` writes the containers auth file (2.) — through its helper when that file
//! names one (`docker-credential-<name> store`, the secret on stdin), as `docker login` does;
//! `sarde logout` erases there too.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};
use tracing::{debug, warn};

pub use crate::registry::Credentials;

/// Environment variable with the registry username (used with [`ENV_PASSWORD`]).
pub const ENV_USERNAME: &str = "SARDE_REGISTRY_USERNAME";
/// Environment variable with the registry password (used with [`ENV_USERNAME`]).
pub const ENV_PASSWORD: &str = "SARDE_REGISTRY_PASSWORD";
/// Environment variable naming the one registry ("host[:port]") that [`ENV_USERNAME`] and
/// [`ENV_PASSWORD`] are for.
pub const ENV_REGISTRY: &str = "SARDE_REGISTRY";
/// Environment variable that overrides the containers auth file location.
pub const ENV_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";
/// Environment variable with docker's configuration directory.
pub const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";

/// Errors while reading or writing credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The credentials file cannot be read or written.
    #[error("could not read or write the credentials file {path}")]
    Io {
        /// The credentials file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The credentials file is not JSON.
    #[error("credentials file {path} is not valid JSON")]
    Json {
        /// The credentials file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The credentials file is JSON of the wrong shape.
    #[error("credentials file {path} has an unexpected structure: {reason}")]
    Malformed {
        /// The credentials file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An `auths` entry is not base64 of `user:password`.
    #[error("the entry for {registry} in {path} is not base64 \"user:password\"")]
    BadAuthEntry {
        /// The credentials file.
        path: PathBuf,
        /// The registry of the entry.
        registry: String,
    },
    /// A credential helper cannot be started.
    #[error("could not run credential helper docker-credential-{helper} for {registry}")]
    HelperSpawn {
        /// The helper's name (`docker-credential-<helper>`).
        helper: String,
        /// The registry's address (`host[:port]`).
        registry: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A credential helper ran and failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {message}")]
    HelperFailed {
        /// The helper's name (`docker-credential-<helper>`).
        helper: String,
        /// The registry's address (`host[:port]`).
        registry: String,
        /// What the helper said.
        message: String,
    },
}

impl CredentialsError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CredentialsError::Json { .. } | CredentialsError::Malformed { .. } => {
                Some("fix or delete the file")
            }
            CredentialsError::BadAuthEntry { .. } => Some("log in to the registry again"),
            _ => None,
        }
    }
}

/// The credentials of the environment, if they are for `registry`.
fn from_environment(registry: &str) -> Option<Credentials> {
    let (Ok(username), Ok(password)) = (std::env::var(ENV_USERNAME), std::env::var(ENV_PASSWORD))
    else {
        return None;
    };
    match std::env::var(ENV_REGISTRY) {
        Ok(named) if key_matches(&named, registry) => {
            debug!(
                registry,
                "using credentials from {ENV_USERNAME}/{ENV_PASSWORD}"
            );
            Some(Credentials { username, password })
        }
        Ok(named) => {
            debug!(
                registry,
                "{ENV_USERNAME}/{ENV_PASSWORD} are for {named}, not this registry"
            );
            None
        }
        Err(_) => {
            warn!(
                "{ENV_USERNAME}/{ENV_PASSWORD} are set but {ENV_REGISTRY} does not name the registry they are for: not using them for {registry}"
            );
            None
        }
    }
}

/// Finds the credentials for `registry` ("host[:port]"); `None` means anonymous access.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, CredentialsError> {
    if let Some(creds) = from_environment(registry) {
        return Ok(Some(creds));
    }
    for path in [
        Some(auth_file_path()),
        config_auth_file(),
        docker_config_path(),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(creds) = lookup_in_file(&path, registry)? {
            debug!(registry, file = %path.display(), "using stored credentials");
            return Ok(Some(creds));
        }
    }
    Ok(None)
}

/// The containers auth file that [`store`] writes.
pub fn auth_file_path() -> PathBuf {
    if let Some(path) = std::env::var_os(ENV_AUTH_FILE).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&runtime).join("containers/auth.json");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/run/containers/{uid}/auth.json"))
}

/// `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/...`), read after the auth file
/// unless `$REGISTRY_AUTH_FILE` chose one.
fn config_auth_file() -> Option<PathBuf> {
    if std::env::var_os(ENV_AUTH_FILE).is_some_and(|p| !p.is_empty()) {
        return None;
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|home| Path::new(&home).join(".config"))
        })?;
    Some(config.join("containers/auth.json"))
}

/// docker's config.json, if a home or `DOCKER_CONFIG` directory is known.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(ENV_DOCKER_CONFIG).filter(|p| !p.is_empty()) {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .map(|home| Path::new(&home).join(".docker/config.json"))
}

/// Where [`store`] put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// In this file.
    File(PathBuf),
    /// With the credential helper `docker-credential-<name>` that this file names.
    Helper {
        /// The helper's name.
        helper: String,
        /// The file that names it.
        file: PathBuf,
    },
}

impl std::fmt::Display for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stored::File(path) => write!(f, "{}", path.display()),
            Stored::Helper { helper, file } => write!(
                f,
                "the credential helper docker-credential-{helper} (named by {})",
                file.display()
            ),
        }
    }
}

/// Stores credentials for `registry`: with the credential helper that the containers auth
/// file names for it, else in that file (keeping all other entries; replaced atomically,
/// readable only by its owner).
pub fn store(registry: &str, creds: &Credentials) -> Result<Stored, CredentialsError> {
    let path = auth_file_path();
    if let Some(helper) = helper_in(&path, registry)? {
        let request = serde_json::json!({
            "ServerURL": registry,
            "Username": creds.username,
            "Secret": creds.password,
        });
        call_helper(&helper, "store", registry, request.to_string().as_bytes())?;
        return Ok(Stored::Helper { helper, file: path });
    }
    store_in(&path, registry, creds)?;
    Ok(Stored::File(path))
}

/// Removes the credentials for `registry` from the containers auth file (and from its
/// credential helper, if it names one); `false` if there were none.
pub fn remove(registry: &str) -> Result<bool, CredentialsError> {
    let path = auth_file_path();
    let erased = match helper_in(&path, registry)? {
        Some(helper) => match call_helper(&helper, "erase", registry, registry.as_bytes()) {
            Ok(_) => true,
            Err(CredentialsError::HelperFailed { message, .. })
                if message.to_ascii_lowercase().contains("not found") =>
            {
                false
            }
            Err(e) => return Err(e),
        },
        None => false,
    };
    Ok(remove_in(&path, registry)? || erased)
}

/// The credential helper a config file names for `registry` (`credHelpers`, else `credsStore`).
fn helper_in(path: &Path, registry: &str) -> Result<Option<String>, CredentialsError> {
    let Some(config) = read_config(path)? else {
        return Ok(None);
    };
    Ok(helper_of(&config, registry).map(str::to_owned))
}

fn helper_of<'a>(config: &'a Map<String, Value>, registry: &str) -> Option<&'a str> {
    find_entry(config.get("credHelpers"), registry)
        .and_then(|(_, v)| v.as_str())
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|h| !h.is_empty())
}

/// Removes all credentials from the containers auth file (other settings are kept).
pub fn remove_all() -> Result<(), CredentialsError> {
    let path = auth_file_path();
    let Some(mut config) = read_config(&path)? else {
        return Ok(());
    };
    if config.remove("auths").is_some() {
        write_config(&path, &config)?;
    }
    Ok(())
}

/// Looks `registry` up in one docker-style config file.
pub fn lookup_in_file(
    path: &Path,
    registry: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    let Some(config) = read_config(path)? else {
        return Ok(None);
    };
    if let Some(helper) = helper_of(&config, registry)
        && let Some(creds) = run_helper(helper, registry)?
    {
        return Ok(Some(creds));
    }
    let Some((key, entry)) = find_entry(config.get("auths"), registry) else {
        return Ok(None);
    };
    let bad = || CredentialsError::BadAuthEntry {
        path: path.to_owned(),
        registry: key.to_owned(),
    };
    match entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        Some(auth) => decode_auth(auth).map(Some).ok_or_else(bad),
        None => Ok(None),
    }
}

/// Writes credentials for `registry` into the docker-style config file at `path`.
pub fn store_in(path: &Path, registry: &str, creds: &Credentials) -> Result<(), CredentialsError> {
    let mut config = read_config(path)?.unwrap_or_default();
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(CredentialsError::Malformed {
            path: path.to_owned(),
            reason: "\"auths\" is not an object".into(),
        });
    };
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    let mut entry = Map::new();
    entry.insert("auth".into(), Value::String(encoded));
    auths.insert(registry.to_owned(), Value::Object(entry));
    write_config(path, &config)
}

/// Removes every `auths` entry for `registry` from the config file at `path`.
pub fn remove_in(path: &Path, registry: &str) -> Result<bool, CredentialsError> {
    let Some(mut config) = read_config(path)? else {
        return Ok(false);
    };
    let Some(Value::Object(auths)) = config.get_mut("auths") else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|key, _| !key_matches(key, registry));
    if auths.len() == before {
        return Ok(false);
    }
    write_config(path, &config)?;
    Ok(true)
}

/// Reads a config file; `None` if it does not exist.
fn read_config(path: &Path) -> Result<Option<Map<String, Value>>, CredentialsError> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialsError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(CredentialsError::Malformed {
            path: path.to_owned(),
            reason: "the top level is not an object".into(),
        }),
        Err(source) => Err(CredentialsError::Json {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces a config file atomically with mode 0600, creating its directory with mode 0700.
fn write_config(path: &Path, config: &Map<String, Value>) -> Result<(), CredentialsError> {
    let io = |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let mut text =
        serde_json::to_string_pretty(config).map_err(|source| CredentialsError::Json {
            path: path.to_owned(),
            source,
        })?;
    text.push('\n');
    let mut temp = tempfile::Builder::new()
        .prefix(".auth.json.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io)?;
    temp.write_all(text.as_bytes()).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The entry of a `{key: value}` object whose key names `registry`: the exact key first,
/// then the URL-like spellings.
fn find_entry<'a>(object: Option<&'a Value>, registry: &str) -> Option<(&'a str, &'a Value)> {
    let object = object?.as_object()?;
    if let Some((key, value)) = object.get_key_value(registry) {
        return Some((key.as_str(), value));
    }
    object
        .iter()
        .find(|(key, _)| key_matches(key, registry))
        .map(|(k, v)| (k.as_str(), v))
}

/// Whether a config key (`host`, `https://host`, `http://host/v2/`, ...) names `registry`.
fn key_matches(key: &str, registry: &str) -> bool {
    let normalized = normalize_key(key);
    normalized == registry || (is_docker_hub(normalized) && is_docker_hub(registry))
}

fn normalize_key(key: &str) -> &str {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    key.strip_suffix("/v2")
        .or_else(|| key.strip_suffix("/v1"))
        .unwrap_or(key)
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Decodes base64 `user:password`.
fn decode_auth(auth: &str) -> Option<Credentials> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// The answer of `docker-credential-<name> get`.
#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the registry on stdin.
/// Returns `None` when the helper has no credentials for it.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
    let stdout = match call_helper(helper, "get", registry, registry.as_bytes()) {
        Ok(stdout) => stdout,
        Err(CredentialsError::HelperFailed { message, .. })
            if message
                .to_ascii_lowercase()
                .contains("credentials not found") =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let failed = |message: String| CredentialsError::HelperFailed {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        message,
    };
    let answer: HelperAnswer = serde_json::from_slice(&stdout)
        .map_err(|_| failed("it printed something other than the expected JSON".into()))?;
    if answer.username == "<token>" {
        warn!(
            registry,
            helper, "the credential helper returned an identity token, which sarde cannot use"
        );
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin (the credential helper
/// protocol: nothing secret on the command line) and returns its stdout.
fn call_helper(
    helper: &str,
    action: &str,
    registry: &str,
    input: &[u8],
) -> Result<Vec<u8>, CredentialsError> {
    let spawn_error = |source| CredentialsError::HelperSpawn {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        source,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may answer without reading its input (e.g. "not found"): its status says.
        match stdin.write_all(input) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(spawn_error(e)),
            _ => {}
        }
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if !output.status.success() {
        let said = if output.stdout.is_empty() {
            &output.stderr
        } else {
            &output.stdout
        };
        return Err(CredentialsError::HelperFailed {
            helper: helper.to_owned(),
            registry: registry.to_owned(),
            message: format!(
                "{} ({})",
                String::from_utf8_lossy(said).trim(),
                output.status
            ),
        });
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_like_podman() {
        for key in [
            "example.org:5000",
            "https://example.org:5000",
            "http://example.org:5000/",
            "example.org:5000/v2/",
        ] {
            assert!(key_matches(key, "example.org:5000"), "{key}");
        }
        assert!(!key_matches("example.org", "example.org:5000"));
        assert!(!key_matches("example.org:5000/ns", "example.org:5000"));
        assert!(key_matches("https://index.docker.io/v1/", "docker.io"));
    }

    #[test]
    fn auth_entries_decode() {
        let creds = decode_auth("dXNlcjpwYTpzcw==").unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("user", "pa:ss")
        );
        assert!(decode_auth("not base64!").is_none());
        assert!(decode_auth("bm9jb2xvbg==").is_none(), "no colon");
    }

    #[test]
    fn store_lookup_remove_in_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        fs_err::create_dir(dir.path().join("sub")).unwrap();
        fs_err::write(
            &path,
            r#"{"auths":{"https://other.org/v2/":{"auth":"YTpi"}},"credHelpers":{}}"#,
        )
        .unwrap();
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        store_in(&path, "127.0.0.1:5000", &creds).unwrap();
        assert_eq!(
            lookup_in_file(&path, "127.0.0.1:5000").unwrap(),
            Some(creds)
        );
        assert_eq!(
            lookup_in_file(&path, "other.org")
                .unwrap()
                .unwrap()
                .username,
            "a"
        );
        assert_eq!(lookup_in_file(&path, "nowhere.org").unwrap(), None);
        let text = fs_err::read_to_string(&path).unwrap();
        assert!(text.contains("credHelpers"), "other keys are kept: {text}");
        assert!(remove_in(&path, "other.org").unwrap());
        assert!(!remove_in(&path, "other.org").unwrap());
        assert_eq!(lookup_in_file(&path, "other.org").unwrap(), None);
    }

    #[test]
    fn broken_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs_err::write(&path, "{").unwrap();
        assert!(matches!(
            lookup_in_file(&path, "x"),
            Err(CredentialsError::Json { .. })
        ));
        fs_err::write(&path, r#"{"auths":{"x":{"auth":"%%%"}}}"#).unwrap();
        assert!(matches!(
            lookup_in_file(&path, "x"),
            Err(CredentialsError::BadAuthEntry { .. })
        ));
        assert_eq!(
            lookup_in_file(&dir.path().join("missing.json"), "x").unwrap(),
            None
        );
    }

    #[test]
    fn missing_helper_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs_err::write(
            &path,
            r#"{"credHelpers":{"x":"sarde-test-no-such-helper"}}"#,
        )
        .unwrap();
        assert!(matches!(
            lookup_in_file(&path, "x"),
            Err(CredentialsError::HelperSpawn { .. })
        ));
    }
}
