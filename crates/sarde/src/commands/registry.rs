//! `sarde login`, `logout`, `fetch`, `push` and `pull`: the registry side.
//!
//! The work is done by `sardine_vm` (fetch, pull, push) and the credentials it re-exports; this
//! module turns arguments into references and registry options, runs the transfers on a tokio
//! runtime of its own, logs a summary, and gives library errors their exit statuses. Secrets are never
//! formatted: only user names and registries appear in messages.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::HumanBytes;
use sardine_vm::fetch::FetchOptions;
use sardine_vm::push::{Push, PushOptions};
use sardine_vm::remote::RegistryAccess;
use sardine_vm::{
    ClientOptions, Credentials, FetchReport, Reference, RegistryClient, RegistryError, Store,
    StoreError, TransferError, credentials,
};
use tracing::{info, warn};

use super::local::{import_options, print_imported};
use super::{connect, image_failure, quiet, reference, store};
use crate::cli::{
    FetchArgs, FetchCommand, LoginArgs, LogoutArgs, OutputFormat, PullArgs, PushArgs, RegistryArgs,
};
use crate::env;
use crate::exit_code::{self, Failure, ResultExt};
use crate::progress::Reporter;
use crate::settings::Settings;

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
    let stored = credentials::store(&registry, &creds)
        .exit_code(exit_code::GENERAL)
        .context(format!("cannot store the credentials for {registry}"))?;
    info!("Login Succeeded: credentials for {registry} stored in {stored}");
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

/// `sarde fetch`: copies an image from a registry into the local store; prints nothing, or
/// with `--format json` a summary.
pub fn fetch(settings: &Settings, command: &FetchCommand) -> anyhow::Result<()> {
    let args = &command.fetch;
    let store = store(settings);
    let (remote, local) = fetch_references(&args.container, args.fetch.source.as_deref())?;
    let access = access(&args.registry, None);
    let options = fetch_options(settings, &store, (&remote, &local), &access, args);
    let started = Instant::now();
    let report = runtime()?
        .block_on(sardine_vm::fetch::fetch(&options))
        .map_err(image_failure)?;
    let time = started.elapsed();
    log_fetched(&remote, &local, &report, time);
    if command.format == OutputFormat::Json {
        let summary = serde_json::json!({
            "reference": local.to_string(),
            "source": remote.to_string(),
            "manifest_digest": report.manifest_digest,
            "downloaded": report.downloaded,
            "skipped": report.skipped,
            "bytes": report.bytes,
            "seconds": time.as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// `sarde pull`: fetch, then import; prints the VM's name (or UUID).
pub fn pull(settings: &Settings, args: &PullArgs) -> anyhow::Result<()> {
    let store = store(settings);
    let (remote, local) =
        fetch_references(&args.fetch.container, args.fetch.fetch.source.as_deref())?;
    let access = access(&args.fetch.registry, None);
    let fetch = fetch_options(settings, &store, (&remote, &local), &access, &args.fetch);
    let progress = Reporter::new(quiet(settings));
    let import = import_options(
        settings,
        (&store, &local),
        &args.import,
        &args.fetch.auto_prune,
        &progress,
    );
    let pulled = runtime()?
        .block_on(sardine_vm::fetch::pull(&fetch, &import))
        .map_err(image_failure)?;
    log_fetched(&remote, &local, &pulled.fetched, pulled.fetch_time);
    print_imported(&pulled.imported, &local, &args.import)
}

/// `sarde push`: copies a local image to every target (default: its own name).
pub fn push(settings: &Settings, args: &PushArgs) -> anyhow::Result<()> {
    let store = store(settings);
    let local = reference(&args.container)?;
    let targets = push_targets(&local, &args.target)?;
    let runtime = runtime()?;
    let access = access(&args.registry, args.chunk_size);
    let mut push = Push::new(PushOptions {
        store: &store,
        local: &local,
        access: &access,
        progress: Arc::new(Reporter::new(quiet(settings))),
    });
    let mut summaries = Vec::new();
    for target in &targets {
        let started = Instant::now();
        let report = runtime.block_on(push.to(target)).map_err(image_failure)?;
        summaries.push(serde_json::json!({
            "target": target.to_string(),
            "manifest_digest": report.manifest_digest,
            "uploaded": report.uploaded,
            "mounted": report.mounted,
            "skipped": report.skipped,
            "bytes": report.bytes,
            "seconds": started.elapsed().as_secs_f64(),
        }));
        info!(
            "pushed {local} to {target} ({}): {} blobs uploaded ({}), {} mounted, {} already there, in {:.1}s",
            report.manifest_digest,
            report.uploaded,
            HumanBytes(report.bytes),
            report.mounted,
            report.skipped,
            started.elapsed().as_secs_f64()
        );
    }
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    }
    Ok(())
}

/// How `--insecure`, `--tls-verify`, `--cert-dir`, `--concurrency` (and push's
/// `--chunk-size`) say to talk to a registry, with the stored credentials.
pub(crate) fn access(args: &RegistryArgs, upload_chunk_size: Option<u64>) -> RegistryAccess {
    RegistryAccess {
        insecure: args.insecure,
        tls_verify: args.tls_verify,
        cert_dir: args.cert_dir.clone(),
        credentials: None,
        concurrency: args.concurrency.into(),
        upload_chunk_size,
    }
}

/// The options of a fetch of `remote` into `store` as `local`.
fn fetch_options<'a>(
    settings: &'a Settings,
    store: &'a Store,
    (remote, local): (&'a Reference, &'a Reference),
    access: &'a RegistryAccess,
    args: &FetchArgs,
) -> FetchOptions<'a> {
    FetchOptions {
        store,
        remote,
        local,
        access,
        arch: args.fetch.arch.clone(),
        auto_prune: args.auto_prune.keep_free_if_on(),
        connect: connect(settings),
        progress: Arc::new(Reporter::new(quiet(settings))),
    }
}

/// The summary of a fetch.
fn log_fetched(remote: &Reference, local: &Reference, report: &FetchReport, time: Duration) {
    info!(
        "fetched {remote} as {local} ({}): {} blobs downloaded ({}), {} already present, in {:.1}s",
        report.manifest_digest,
        report.downloaded,
        HumanBytes(report.bytes),
        report.skipped,
        time.as_secs_f64()
    );
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

/// The hint for a registry that refused the credentials, in sarde's words: its `login` command
/// and variables.
pub(super) fn unauthorized_hint(registry: &str) -> String {
    format!(
        "check the credentials with `sarde login {registry}`, or {}/{}",
        env::SARDE_REGISTRY_USERNAME,
        env::SARDE_REGISTRY_PASSWORD
    )
}

/// A registry error with its exit status.
fn registry_failure(error: RegistryError) -> anyhow::Error {
    Failure::new(registry_code(&error), error).into()
}

/// The exit status for a transfer error.
pub(super) fn transfer_code(error: &TransferError) -> u8 {
    match error {
        TransferError::Registry { source, .. } => registry_code(source),
        TransferError::Store { source, .. } => store_code(source),
        TransferError::NoPlatform { .. } => exit_code::NOT_FOUND,
        TransferError::NotAnImage { .. } | TransferError::BadManifest { .. } => {
            exit_code::INTEGRITY
        }
        TransferError::WrongRegistry { .. } | TransferError::DigestConflict { .. } => {
            exit_code::USAGE
        }
        TransferError::Task { .. }
        | TransferError::TooLarge { .. }
        | TransferError::NoRoom { .. } => exit_code::GENERAL,
    }
}

/// The exit status for a registry error.
pub(super) fn registry_code(error: &RegistryError) -> u8 {
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
    use sardine_vm::ImageError;

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
    fn error_codes() {
        let not_found = TransferError::Registry {
            image: "x".into(),
            source: RegistryError::NotFound {
                registry: "r".into(),
                what: "manifest".into(),
            },
        };
        let error = image_failure(ImageError::Transfer(not_found));
        assert_eq!(exit_code::code_of(&error), exit_code::NOT_FOUND);
        assert!(exit_code::hint_of(&error).is_some());
        let corrupt = RegistryError::DigestMismatch {
            digest: "sha256:a".into(),
            actual: sardine_vm::Digest::of(b"b"),
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
