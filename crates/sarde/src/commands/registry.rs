//! `sarde login`, `logout`, `fetch`, `push` and `pull`: the registry side.
//!
//! The work is done by `sardine_oci` (registry client, credentials, transfers); this module
//! turns arguments into references and client options, runs the transfers on a tokio runtime of
//! its own, logs a summary, and maps library errors to exit statuses. Secrets are never
//! formatted: only user names and registries appear in messages.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::HumanBytes;
use sardine_oci::credentials::{self, Credentials};
use sardine_oci::layout::{Store, StoreError};
use sardine_oci::reference::Reference;
use sardine_oci::registry::{ClientOptions, RegistryClient, RegistryError};
use sardine_oci::transfer::{self, MakeRoom, TransferError, TransferOptions};
use sardine_vm::prune::AutoPrune;
use tracing::{debug, info, warn};

use super::local::import_reference;
use super::{connect, quiet, reference, store};
use crate::cli::{FetchArgs, LoginArgs, LogoutArgs, PullArgs, PushArgs, RegistryArgs};
use crate::env;
use crate::exit_code::{self, Failure, ResultExt};
use crate::progress::Reporter;
use crate::settings::Settings;

/// At most this many repositories are tried as mount sources for each blob of a push.
const MAX_MOUNT_SOURCES: usize = 4;

/// `sarde login`: checks the credentials against the registry, then stores them.
pub fn login(_settings: &Settings, args: &LoginArgs) -> anyhow::Result<()> {
    let registry = registry_host(&args.registry)?;
    let username = username(args)?;
    let password = password(args)?;
    let creds = Credentials { username, password };
    let options = ClientOptions {
        credentials: Some(creds.clone()),
        ..ClientOptions::default()
    };
    let client = RegistryClient::new(&registry, options).map_err(registry_failure)?;
    runtime()?
        .block_on(client.ping())
        .map_err(|error| login_failure(&registry, &creds.username, error))?;
    let path = credentials::store(&registry, &creds)
        .exit_code(exit_code::GENERAL)
        .context(format!("cannot store the credentials for {registry}"))?;
    info!(
        "Login Succeeded: credentials for {registry} stored in {}",
        path.display()
    );
    Ok(())
}

/// `sarde logout`: removes stored credentials (of one registry, or all of them).
pub fn logout(_settings: &Settings, args: &LogoutArgs) -> anyhow::Result<()> {
    let path = credentials::auth_file_path();
    let Some(registry) = args.registry() else {
        credentials::remove_all().exit_code(exit_code::GENERAL)?;
        info!(
            "removed the credentials of all registries from {}",
            path.display()
        );
        return Ok(());
    };
    let registry = registry_host(registry)?;
    if credentials::remove(&registry).exit_code(exit_code::GENERAL)? {
        info!(
            "removed the credentials for {registry} from {}",
            path.display()
        );
    } else {
        warn!(
            "not logged in to {registry}: {} has no credentials for it",
            path.display()
        );
    }
    Ok(())
}

/// `sarde fetch`: copies an image from a registry into the local store; prints nothing.
pub fn fetch(settings: &Settings, args: &FetchArgs) -> anyhow::Result<()> {
    fetch_into(settings, &store(settings), args)?;
    Ok(())
}

/// `sarde pull`: fetch, then import; prints the VM's name (or UUID).
pub fn pull(settings: &Settings, args: &PullArgs) -> anyhow::Result<()> {
    let store = store(settings);
    let local = fetch_into(settings, &store, &args.fetch)?;
    import_reference(
        settings,
        &store,
        &local,
        &args.import,
        &args.fetch.auto_prune,
    )
}

/// `sarde push`: copies a local image to every target (default: its own name).
pub fn push(settings: &Settings, args: &PushArgs) -> anyhow::Result<()> {
    let store = store(settings);
    let local = reference(&args.container)?;
    let targets = push_targets(&local, &args.target)?;
    let runtime = runtime()?;
    let mut clients: HashMap<String, RegistryClient> = HashMap::new();
    let mut pushed: Vec<Reference> = Vec::new();
    for target in &targets {
        let host = required_registry(target)?;
        let client = match clients.get(host) {
            Some(client) => client.clone(),
            None => {
                let client = registry_client(host, &args.registry, args.chunk_size)?;
                clients.insert(host.to_owned(), client.clone());
                client
            }
        };
        let reporter = Arc::new(Reporter::new(quiet(settings)));
        sardine_vm::Progress::start(reporter.as_ref(), &format!("push {target}"), 0);
        let opts = TransferOptions {
            concurrency: args.registry.concurrency.into(),
            arch: None,
            progress: reporter.clone(),
            mount_from: mount_sources(&store, &local, target, &pushed),
            make_room: None,
        };
        debug!(%target, mount_from = ?opts.mount_from, "pushing");
        let started = Instant::now();
        let report = runtime
            .block_on(transfer::push_image(&client, &store, &local, target, &opts))
            .map_err(transfer_failure)?;
        sardine_vm::Progress::finish(reporter.as_ref());
        info!(
            "pushed {local} to {target} ({}): {} blobs uploaded ({}), {} mounted, {} already there, in {:.1}s",
            report.manifest_digest,
            report.uploaded,
            HumanBytes(report.bytes),
            report.mounted,
            report.skipped,
            started.elapsed().as_secs_f64()
        );
        pushed.push(target.clone());
    }
    Ok(())
}

/// Fetches CONTAINER (or `--source`) into `store` as CONTAINER; returns the local reference.
fn fetch_into(settings: &Settings, store: &Store, args: &FetchArgs) -> anyhow::Result<Reference> {
    let (remote, local) = fetch_references(&args.container, args.fetch.source.as_deref())?;
    let client = registry_client(required_registry(&remote)?, &args.registry, None)?;
    let reporter = Arc::new(Reporter::new(quiet(settings)));
    sardine_vm::Progress::start(reporter.as_ref(), &format!("fetch {remote}"), 0);
    let opts = TransferOptions {
        concurrency: args.registry.concurrency.into(),
        arch: args.fetch.arch.clone(),
        progress: reporter.clone(),
        mount_from: Vec::new(),
        make_room: args.auto_prune.keep_free_if_on().map(|keep_free| {
            Arc::new(AutoPrune {
                store: store.clone(),
                connect: connect(settings).map(str::to_owned),
                keep_free,
            }) as Arc<dyn MakeRoom>
        }),
    };
    let started = Instant::now();
    let report = runtime()?
        .block_on(transfer::fetch_image(
            &client, &remote, store, &local, &opts,
        ))
        .map_err(transfer_failure)?;
    sardine_vm::Progress::finish(reporter.as_ref());
    info!(
        "fetched {remote} as {local} ({}): {} blobs downloaded ({}), {} already present, in {:.1}s",
        report.manifest_digest,
        report.downloaded,
        HumanBytes(report.bytes),
        report.skipped,
        started.elapsed().as_secs_f64()
    );
    Ok(local)
}

/// The remote and the local reference of a fetch: `--source` (else CONTAINER) and CONTAINER.
fn fetch_references(
    container: &str,
    source: Option<&str>,
) -> anyhow::Result<(Reference, Reference)> {
    let local = reference(container)?;
    let remote = match source {
        Some(source) => reference(source)?,
        None => local.clone(),
    };
    required_registry(&remote)?;
    Ok((remote, local))
}

/// The push targets: `--target`s, else CONTAINER itself; each must name a registry.
fn push_targets(local: &Reference, targets: &[String]) -> anyhow::Result<Vec<Reference>> {
    let targets = if targets.is_empty() {
        vec![local.clone()]
    } else {
        targets
            .iter()
            .map(|t| reference(t))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    for target in &targets {
        required_registry(target)?;
    }
    Ok(targets)
}

/// The registry part of a reference that is sent to or fetched from a registry.
fn required_registry(remote: &Reference) -> anyhow::Result<&str> {
    remote.registry().ok_or_else(|| {
        let failure = Failure::new(
            exit_code::USAGE,
            anyhow::anyhow!(
                "{remote} names no registry, so sarde does not know where to transfer it"
            ),
        )
        .with_hint(format!(
            "put the registry first, as in localhost:5000/{0} or registry.example.org/{0} \
             (for fetch and pull, --source can name it while CONTAINER stays the local name)",
            remote.repository()
        ));
        anyhow::Error::new(failure)
    })
}

/// Repositories on the target's registry that may hold the blobs already, to mount from
/// instead of uploading: the local image's own repository, targets pushed before in this run,
/// and other local images from that registry that share blobs with this one.
fn mount_sources(
    store: &Store,
    local: &Reference,
    target: &Reference,
    pushed: &[Reference],
) -> Vec<String> {
    let same_registry = |r: &Reference| r.registry().is_some() && r.registry() == target.registry();
    let mut sources: Vec<String> = std::iter::once(local)
        .chain(pushed)
        .filter(|r| same_registry(r))
        .map(|r| r.repository().to_owned())
        .collect();
    sources.extend(sharing_repositories(store, local, target));
    let mut seen = HashSet::new();
    sources.retain(|s| s != target.repository() && seen.insert(s.clone()));
    sources.truncate(MAX_MOUNT_SOURCES);
    sources
}

/// Local repositories from `target`'s registry with blobs in common with `local`, most shared
/// first (best effort: unreadable repositories are left out).
fn sharing_repositories(store: &Store, local: &Reference, target: &Reference) -> Vec<String> {
    let Some(wanted) = image_blobs(store, local) else {
        return Vec::new();
    };
    let Ok(repos) = store.repos() else {
        return Vec::new();
    };
    let mut shared: Vec<(usize, String)> = repos
        .iter()
        .filter(|repo| repo.name() != local.name())
        .filter_map(|repo| {
            let name = Reference::parse(repo.name()).ok()?;
            if name.registry() != target.registry() {
                return None;
            }
            let common = repo_blobs(repo).intersection(&wanted).count();
            (common > 0).then(|| (common, name.repository().to_owned()))
        })
        .collect();
    shared.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    shared.into_iter().map(|(_, name)| name).collect()
}

/// The blobs (config and layers) of a local image.
fn image_blobs(store: &Store, image: &Reference) -> Option<HashSet<String>> {
    let repo = store.existing_repo(image.name()).ok()?;
    let desc = repo.resolve(image.tag(), image.digest()).ok()?;
    let manifest = repo.read_manifest(&desc).ok()?;
    Some(
        std::iter::once(manifest.config)
            .chain(manifest.layers)
            .map(|d| d.digest)
            .collect(),
    )
}

/// The blobs of every image manifest of a local repository.
fn repo_blobs(repo: &sardine_oci::layout::Repo) -> HashSet<String> {
    let Ok(index) = repo.index() else {
        return HashSet::new();
    };
    index
        .manifests
        .iter()
        .filter_map(|desc| repo.read_manifest(desc).ok())
        .flat_map(|m| std::iter::once(m.config).chain(m.layers))
        .map(|d| d.digest)
        .collect()
}

/// A client for `registry` with the stored (or environment) credentials, if any.
fn registry_client(
    registry: &str,
    args: &RegistryArgs,
    chunk_size: Option<u64>,
) -> anyhow::Result<RegistryClient> {
    let credentials = credentials::lookup(registry)
        .exit_code(exit_code::GENERAL)
        .context(format!("cannot read the credentials for {registry}"))?;
    debug!(
        registry,
        authenticated = credentials.is_some(),
        insecure = args.insecure,
        "registry client"
    );
    let options = ClientOptions {
        insecure: args.insecure,
        credentials,
        upload_chunk_size: chunk_size,
        ..ClientOptions::default()
    };
    RegistryClient::new(registry, options).map_err(registry_failure)
}

/// A runtime for the async registry client (sarde's `main` is synchronous).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The registry as the auth file keys it: `host[:port]`, also accepted with a scheme or `/v2/`
/// (as podman and docker accept them).
fn registry_host(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim();
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    let host = host.strip_suffix('/').unwrap_or(host);
    let host = host.strip_suffix("/v2").unwrap_or(host);
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        let failure = Failure::new(
            exit_code::USAGE,
            anyhow::anyhow!(
                "invalid registry {text:?}: expected a host name with an optional port"
            ),
        )
        .with_hint(
            "registries look like registry.example.org or localhost:5000 (no repository path)",
        );
        return Err(failure.into());
    }
    Ok(host.to_owned())
}

/// Where the password of `sarde login` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordSource {
    /// `-p`: visible in the process list.
    Argument,
    /// `SARDE_REGISTRY_PASSWORD` (clap puts it into the same field as `-p`).
    Environment,
    /// One line of standard input (`--password-stdin`).
    Stdin,
    /// Asked for on the terminal, without echo.
    Prompt,
}

/// Chooses the password source; `None` when there is none (no terminal to ask on).
fn password_source(
    args: &LoginArgs,
    from_env: Option<&str>,
    stdin_is_tty: bool,
) -> Option<PasswordSource> {
    if args.password_stdin {
        return Some(PasswordSource::Stdin);
    }
    match args.password.as_deref() {
        Some(password) if from_env == Some(password) => Some(PasswordSource::Environment),
        Some(_) => Some(PasswordSource::Argument),
        None => stdin_is_tty.then_some(PasswordSource::Prompt),
    }
}

/// The user name: `-u` or `SARDE_REGISTRY_USERNAME` (clap reads both), else asked for.
fn username(args: &LoginArgs) -> anyhow::Result<String> {
    if let Some(name) = args.username.as_deref().filter(|n| !n.is_empty()) {
        return Ok(name.to_owned());
    }
    if args.password_stdin || !std::io::stdin().is_terminal() {
        return Err(anyhow::anyhow!("no user name given"))
            .exit_code(exit_code::USAGE)
            .hint(format!(
                "give -u USER, or set {}",
                env::SARDE_REGISTRY_USERNAME
            ));
    }
    let name = prompt("Username: ", false)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(anyhow::anyhow!("no user name given")).exit_code(exit_code::USAGE);
    }
    Ok(name.to_owned())
}

/// The password, from where [`password_source`] says.
fn password(args: &LoginArgs) -> anyhow::Result<String> {
    let from_env = std::env::var(env::SARDE_REGISTRY_PASSWORD).ok();
    let source = password_source(args, from_env.as_deref(), std::io::stdin().is_terminal());
    let password = match (source, args.password.as_deref()) {
        (Some(PasswordSource::Argument), Some(password)) => {
            warn!(
                "a password on the command line is visible to other users in the process list; \
                 use --password-stdin or {}",
                env::SARDE_REGISTRY_PASSWORD
            );
            password.to_owned()
        }
        (Some(PasswordSource::Environment), Some(password)) => password.to_owned(),
        (Some(PasswordSource::Stdin), _) => read_stdin_line()?,
        (Some(PasswordSource::Prompt), _) => prompt("Password: ", true)?,
        _ => {
            return Err(anyhow::anyhow!(
                "no password given, and standard input is not a terminal to ask on"
            ))
            .exit_code(exit_code::USAGE)
            .hint(format!(
                "pipe it into --password-stdin, or set {}",
                env::SARDE_REGISTRY_PASSWORD
            ));
        }
    };
    if password.is_empty() {
        return Err(anyhow::anyhow!("the password is empty")).exit_code(exit_code::USAGE);
    }
    Ok(password)
}

/// One line of standard input without its line ending.
fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(strip_line_ending(&line).to_owned())
}

/// `line` without a trailing `\n` or `\r\n`.
fn strip_line_ending(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// Asks on stderr and reads a line from the terminal on stdin (without echo if `hidden`).
fn prompt(question: &str, hidden: bool) -> anyhow::Result<String> {
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question}")?;
    stderr.flush()?;
    let _echo = if hidden {
        Some(EchoOff::new().context("cannot turn off the terminal's echo")?)
    } else {
        None
    };
    read_stdin_line()
}

/// Turns off the echo of the terminal on stdin while it lives (newlines are still echoed).
struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    fn new() -> std::io::Result<EchoOff> {
        // SAFETY: termios is plain data; tcgetattr fills it in or fails.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid file descriptor and a pointer to a termios we own.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut term) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let saved = term;
        term.c_lflag &= !libc::ECHO;
        term.c_lflag |= libc::ECHONL;
        // SAFETY: as above; `term` is a valid termios from tcgetattr.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &term) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`; nothing to do if that fails.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

/// The failure of `sarde login`'s check: refused credentials say so plainly.
fn login_failure(registry: &str, username: &str, error: RegistryError) -> anyhow::Error {
    if let RegistryError::Unauthorized { status, .. } = error {
        let failure = Failure::new(
            exit_code::NETWORK,
            anyhow::anyhow!(
                "login to {registry} as {username} failed: the registry refused the user name or password (HTTP {status}); nothing was saved"
            ),
        )
        .with_hint("check the user name and the password or token");
        return failure.into();
    }
    registry_failure(error).context(format!("cannot log in to {registry}; nothing was saved"))
}

/// A registry error with its exit status.
fn registry_failure(error: RegistryError) -> anyhow::Error {
    Failure::new(registry_code(&error), error).into()
}

/// A transfer error with its exit status and, for missing images, a hint.
fn transfer_failure(error: TransferError) -> anyhow::Error {
    let code = match &error {
        TransferError::Registry { source, .. } => registry_code(source),
        TransferError::Store { source, .. } => store_code(source),
        TransferError::NoPlatform { .. } => exit_code::NOT_FOUND,
        TransferError::NotAnImage { .. } | TransferError::BadManifest { .. } => {
            exit_code::INTEGRITY
        }
        TransferError::WrongRegistry { .. } | TransferError::DigestConflict { .. } => {
            exit_code::USAGE
        }
        TransferError::Task { .. } => exit_code::GENERAL,
    };
    let not_found_remotely = matches!(
        &error,
        TransferError::Registry {
            source: RegistryError::NotFound { .. },
            ..
        }
    );
    let failure = Failure::new(code, error);
    if not_found_remotely {
        return failure
            .with_hint("check the repository and tag; private images need `sarde login` first")
            .into();
    }
    failure.into()
}

/// The exit status for a registry error.
fn registry_code(error: &RegistryError) -> u8 {
    match error {
        RegistryError::NotFound { .. } => exit_code::NOT_FOUND,
        RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. } => {
            exit_code::INTEGRITY
        }
        RegistryError::InvalidRegistry { .. }
        | RegistryError::InvalidName { .. }
        | RegistryError::InvalidDigest { .. } => exit_code::USAGE,
        RegistryError::Io { .. } => exit_code::GENERAL,
        _ => exit_code::NETWORK,
    }
}

/// The exit status for a local store error.
fn store_code(error: &StoreError) -> u8 {
    match error {
        StoreError::NoSuchRepo { .. }
        | StoreError::TagNotFound { .. }
        | StoreError::DigestNotFound { .. }
        | StoreError::EmptyRepo { .. } => exit_code::NOT_FOUND,
        StoreError::InvalidReference(_) => exit_code::USAGE,
        StoreError::Io { .. } | StoreError::Lock { .. } => exit_code::GENERAL,
        _ => exit_code::INTEGRITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: anyhow::Result<impl std::fmt::Debug>) -> u8 {
        match result {
            Ok(value) => panic!("expected an error, got {value:?}"),
            Err(error) => exit_code::code_of(&error),
        }
    }

    fn login_args(password: Option<&str>, password_stdin: bool) -> LoginArgs {
        LoginArgs {
            registry: "r.example".to_owned(),
            username: Some("fish".to_owned()),
            password: password.map(str::to_owned),
            password_stdin,
        }
    }

    #[test]
    fn registry_hosts_are_normalised() -> anyhow::Result<()> {
        for text in [
            "r.example:5000",
            "https://r.example:5000",
            "http://r.example:5000/",
            "r.example:5000/v2/",
        ] {
            assert_eq!(registry_host(text)?, "r.example:5000", "{text}");
        }
        for bad in ["", "r.example/group", "https://", "user@r.example"] {
            assert_eq!(code(registry_host(bad)), exit_code::USAGE, "{bad}");
        }
        Ok(())
    }

    #[test]
    fn password_sources() {
        let stdin = login_args(None, true);
        assert_eq!(
            password_source(&stdin, Some("x"), true),
            Some(PasswordSource::Stdin)
        );
        let argument = login_args(Some("hunter2"), false);
        assert_eq!(
            password_source(&argument, None, false),
            Some(PasswordSource::Argument)
        );
        assert_eq!(
            password_source(&argument, Some("other"), false),
            Some(PasswordSource::Argument)
        );
        assert_eq!(
            password_source(&argument, Some("hunter2"), false),
            Some(PasswordSource::Environment)
        );
        let nothing = login_args(None, false);
        assert_eq!(
            password_source(&nothing, None, true),
            Some(PasswordSource::Prompt)
        );
        assert_eq!(password_source(&nothing, None, false), None);
    }

    #[test]
    fn line_endings_are_stripped_once() {
        assert_eq!(strip_line_ending("secret\n"), "secret");
        assert_eq!(strip_line_ending("secret\r\n"), "secret");
        assert_eq!(strip_line_ending("secret"), "secret");
        assert_eq!(strip_line_ending("sec ret \n\n"), "sec ret \n");
    }

    #[test]
    fn fetch_takes_the_source_or_the_container() -> anyhow::Result<()> {
        let (remote, local) = fetch_references("localhost:5000/vm:1", None)?;
        assert_eq!(
            (remote.to_string(), local.to_string()),
            ("localhost:5000/vm:1".into(), "localhost:5000/vm:1".into())
        );
        let (remote, local) = fetch_references("vm:1", Some("r.example/vms/vm:2"))?;
        assert_eq!(
            (remote.to_string(), local.to_string()),
            ("r.example/vms/vm:2".into(), "vm:1".into())
        );
        assert_eq!(code(fetch_references("vm:1", None)), exit_code::USAGE);
        assert_eq!(
            code(fetch_references("r.example/vm:1", Some("vm:2"))),
            exit_code::USAGE
        );
        assert_eq!(code(fetch_references("Bad Name", None)), exit_code::USAGE);
        Ok(())
    }

    #[test]
    fn push_targets_default_to_the_container() -> anyhow::Result<()> {
        let local = Reference::parse("r.example/vm:1")?;
        let targets = push_targets(&local, &[])?;
        assert_eq!(targets, std::slice::from_ref(&local));
        let targets = push_targets(
            &local,
            &["a.example/x:1".to_owned(), "b.example:5000/y:2".to_owned()],
        )?;
        let hosts: Vec<_> = targets.iter().map(|t| t.registry()).collect();
        assert_eq!(hosts, [Some("a.example"), Some("b.example:5000")]);
        assert_eq!(
            code(push_targets(&local, &["x:1".to_owned()])),
            exit_code::USAGE
        );
        let unqualified = Reference::parse("vm:1")?;
        assert_eq!(code(push_targets(&unqualified, &[])), exit_code::USAGE);
        Ok(())
    }

    #[test]
    fn mount_sources_are_on_the_target_registry() -> anyhow::Result<()> {
        let store = Store::new(tempfile::tempdir()?.path().join("empty"));
        let local = Reference::parse("r.example/vms/a:1")?;
        let same = Reference::parse("r.example/vms/b:1")?;
        let other = Reference::parse("o.example/vms/a:1")?;
        assert_eq!(mount_sources(&store, &local, &same, &[]), ["vms/a"]);
        assert!(mount_sources(&store, &local, &local, &[]).is_empty());
        assert!(mount_sources(&store, &local, &other, std::slice::from_ref(&same)).is_empty());
        let third = Reference::parse("r.example/vms/c:1")?;
        assert_eq!(
            mount_sources(&store, &local, &third, &[same.clone(), other]),
            ["vms/a", "vms/b"]
        );
        Ok(())
    }

    #[test]
    fn error_codes() {
        let not_found = TransferError::Registry {
            image: "x".into(),
            source: RegistryError::NotFound {
                registry: "r".into(),
                what: "manifest".into(),
            },
        };
        let error = transfer_failure(not_found);
        assert_eq!(exit_code::code_of(&error), exit_code::NOT_FOUND);
        assert!(exit_code::hint_of(&error).is_some());
        let corrupt = RegistryError::DigestMismatch {
            digest: "sha256:a".into(),
            actual: "sha256:b".into(),
        };
        assert_eq!(registry_code(&corrupt), exit_code::INTEGRITY);
        let refused = RegistryError::Unauthorized {
            registry: "r".into(),
            status: 401,
            action: "x".into(),
        };
        assert_eq!(registry_code(&refused), exit_code::NETWORK);
        let login = login_failure("r", "fish", refused);
        assert_eq!(exit_code::code_of(&login), exit_code::NETWORK);
        assert!(
            login.to_string().contains("fish") && login.to_string().contains("nothing was saved")
        );
        let missing = StoreError::TagNotFound {
            repo: "x".into(),
            tag: "1".into(),
        };
        assert_eq!(store_code(&missing), exit_code::NOT_FOUND);
    }
}
