//! `sarde run`: a command in a throwaway VM, through the phases of [`sardine_vm::run`]: fetch
//! (pull policy), import, clone and start, address, SSH login, shares and ports, the command,
//! and the clone thrown away.
//!
//! SIGINT and SIGTERM are honoured in every phase: the command is stopped, the clone
//! destroyed with its overlays, and sarde exits 130 or 143. A fetch or import that is
//! interrupted leaves only what a re-run resumes or replaces (partial blobs in the store, an
//! import's staging directory). Exit statuses are those of `docker run`: COMMAND's own, 124
//! for `--timeout` (as `timeout(1)`), 125 when sarde itself failed.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sardine_ssh::{ExitStatus, Login, Session, shell_quote};
use sardine_vm::clone::{ExtraDisk, Overrides, Share};
use sardine_vm::import::{ImportOptions, import};
use sardine_vm::run::{self as engine, Launch, PullPolicy};
use sardine_vm::{AddressSource, Libvirt};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{connect, quiet, store, threads};
use crate::cli::{self, RunArgs};
use crate::exit_code::{self, Failure};
use crate::progress::Reporter;
use crate::settings::Settings;

/// sarde's own failure in `run` (as `docker run`'s 125).
const RUN_FAILED: u8 = 125;
/// `--timeout` ran out (as `timeout(1)`).
const TIMED_OUT: u8 = 124;

/// Runs `sarde run`.
pub fn run(settings: &Settings, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::parse(args).map_err(|e| own_failure(exit_code::USAGE, e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run_async(settings, args, &plan));
    // An interrupted import may still be running on a blocking thread: do not wait for it.
    runtime.shutdown_background();
    result
}

/// What the command line asks for, checked before anything starts.
#[derive(Debug, Default)]
struct Plan {
    overrides: Overrides,
    /// Where each share is mounted in the guest.
    mount_points: Vec<String>,
    ports: Vec<(SocketAddr, u16)>,
}

impl Plan {
    fn parse(args: &RunArgs) -> anyhow::Result<Plan> {
        let mut plan = Plan::default();
        for (index, text) in args.mount.iter().enumerate() {
            let (share, point) = parse_mount(text, index)?;
            plan.overrides.shares.push(share);
            plan.mount_points.push(point);
        }
        for text in &args.disk {
            plan.overrides.disks.push(parse_disk(text));
        }
        for text in &args.publish {
            plan.ports.push(parse_publish(text)?);
        }
        plan.overrides.kernel = args.kernel.clone();
        plan.overrides.initrd = args.initrd.clone();
        plan.overrides.cmdline = args.cmdline.clone();
        plan.overrides.console_log = args.console_log.clone();
        if args.command.is_empty()
            && !args.stdin
            && !args.detach
            && !crate::terminal::is_interactive()
        {
            anyhow::bail!(
                "no COMMAND to run and no terminal for a shell: give one after `--`, a script with --stdin, or --detach to log in with `sarde ssh`"
            );
        }
        Ok(plan)
    }
}

/// `HOSTDIR[:TAG|:GUESTDIR][:ro]`: the share and where the guest mounts it.
fn parse_mount(text: &str, index: usize) -> anyhow::Result<(Share, String)> {
    let (rest, readonly) = match text.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (text.strip_suffix(":rw").unwrap_or(text), false),
    };
    let default_tag = if index == 0 {
        "host".to_owned()
    } else {
        format!("host{index}")
    };
    let (source, tag, point) = match rest.split_once(':') {
        Some((source, guest)) if guest.starts_with('/') => (source, default_tag, guest.to_owned()),
        Some((source, tag)) => (source, tag.to_owned(), format!("/{tag}")),
        None => (rest, default_tag.clone(), format!("/{default_tag}")),
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= 36
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if source.is_empty() || !tag_ok {
        anyhow::bail!(
            "--mount {text:?}: expected HOSTDIR[:TAG|:GUESTDIR][:ro], a TAG of at most 36 letters, digits, '-' and '_'"
        );
    }
    let share = Share {
        source: PathBuf::from(source),
        tag,
        readonly,
    };
    Ok((share, point))
}

/// `FILE[:rw]`: an extra disk, read-only unless `:rw`.
fn parse_disk(text: &str) -> ExtraDisk {
    match text.strip_suffix(":rw") {
        Some(path) => ExtraDisk {
            path: PathBuf::from(path),
            readonly: false,
        },
        None => ExtraDisk {
            path: PathBuf::from(text.strip_suffix(":ro").unwrap_or(text)),
            readonly: true,
        },
    }
}

/// `[HOSTADDR:]HOSTPORT:GUESTPORT`, the host address 127.0.0.1 by default (`[::1]` for IPv6).
fn parse_publish(text: &str) -> anyhow::Result<(SocketAddr, u16)> {
    let bad = || anyhow::anyhow!("-p {text:?}: expected [HOSTADDR:]HOSTPORT:GUESTPORT");
    let (host, guest) = text.rsplit_once(':').ok_or_else(bad)?;
    let guest: u16 = guest.parse().map_err(|_| bad())?;
    let (address, port) = match host.rsplit_once(':') {
        Some((address, port)) => {
            let address = address.trim_start_matches('[').trim_end_matches(']');
            (address.parse::<IpAddr>().map_err(|_| bad())?, port)
        }
        None => (IpAddr::from([127, 0, 0, 1]), host),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if guest == 0 {
        return Err(bad());
    }
    Ok((SocketAddr::new(address, port), guest))
}

/// SIGINT and SIGTERM, as the exit status they end sarde with.
struct Interrupts {
    int: Signal,
    term: Signal,
}

impl Interrupts {
    fn new() -> anyhow::Result<Interrupts> {
        Ok(Interrupts {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// The next interrupt's exit status (130 or 143).
    async fn next(&mut self) -> u8 {
        tokio::select! {
            _ = self.int.recv() => 130,
            _ = self.term.recv() => 143,
        }
    }
}

/// How a phase ended when it did not produce its value.
enum Stop {
    Interrupted(u8),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Stop {
    fn from(error: anyhow::Error) -> Stop {
        Stop::Failed(error)
    }
}

impl From<sardine_vm::LibvirtError> for Stop {
    fn from(error: sardine_vm::LibvirtError) -> Stop {
        Stop::Failed(error.into())
    }
}

/// Runs `phase` unless an interrupt comes first.
async fn interruptible<T>(
    interrupts: &mut Interrupts,
    phase: impl Future<Output = anyhow::Result<T>>,
) -> Result<T, Stop> {
    tokio::select! {
        result = phase => result.map_err(Stop::Failed),
        code = interrupts.next() => Err(Stop::Interrupted(code)),
    }
}

async fn run_async(settings: &Settings, args: &RunArgs, plan: &Plan) -> anyhow::Result<ExitCode> {
    let mut interrupts = Interrupts::new()?;
    let name = args.name.clone().unwrap_or_else(engine::unique_name);
    let started = Instant::now();
    let outcome = match prepare_source(settings, args, &mut interrupts).await {
        Ok(()) => run_in_clone(settings, args, plan, &name, &mut interrupts).await,
        Err(stop) => Err(stop),
    };
    tracing::debug!("sarde run took {:.1}s", started.elapsed().as_secs_f64());
    match outcome {
        Ok(code) => Ok(exit_code::to_exit_code(code)),
        Err(Stop::Interrupted(code)) => {
            tracing::warn!("interrupted; nothing of the run is left");
            Ok(exit_code::to_exit_code(code))
        }
        Err(Stop::Failed(error)) => Err(own_failure(RUN_FAILED, error)),
    }
}

/// Fetches (by the pull policy) and imports the image, unless IMAGE names a defined VM.
async fn prepare_source(
    settings: &Settings,
    args: &RunArgs,
    interrupts: &mut Interrupts,
) -> Result<(), Stop> {
    let libvirt = Libvirt::open_read_only(connect(settings))?;
    if libvirt.lookup(&args.image).ok().flatten().is_some() {
        tracing::info!("running a clone of the VM {}", args.image);
        return Ok(());
    }
    let reference = super::reference(&args.image)?;
    let store = store(settings);
    let access = super::registry::access(&args.registry, None);
    let policy = match args.pull {
        cli::PullPolicy::Always => PullPolicy::Always,
        cli::PullPolicy::Missing => PullPolicy::Missing,
        cli::PullPolicy::Never => PullPolicy::Never,
    };
    let fetch = engine::ensure_image(
        &store,
        &reference,
        policy,
        &access,
        args.auto_prune.keep_free_if_on(),
        connect(settings),
        Arc::new(Reporter::new(quiet(settings))),
    );
    interruptible(interrupts, async {
        fetch
            .await
            .map_err(super::image_failure)
            .with_context(|| format!("cannot get {reference}"))
    })
    .await?;
    let (settings_connect, vmdir) = (
        settings.cli.global.connect.clone(),
        args.vmdir.vmdir.clone(),
    );
    let (allow_unsafe_xml, quiet) = (args.unsafe_xml.allow_unsafe_xml, quiet(settings));
    let importing = tokio::task::spawn_blocking(move || {
        import(&ImportOptions {
            store: &store,
            reference: &reference,
            name: None,
            vmdir: &vmdir,
            connect: settings_connect.as_deref(),
            allow_unsafe_xml,
            threads: threads(),
            auto_prune: None,
            max_disk_size: sardine_vm::import::DEFAULT_MAX_DISK_SIZE,
            progress: &Reporter::new(quiet),
        })
        .map_err(super::image_failure)
    });
    interruptible(interrupts, async {
        importing.await.context("the import task died")?
    })
    .await?;
    Ok(())
}

/// Starts the clone, runs the command in it and throws it away (unless kept or detached).
async fn run_in_clone(
    settings: &Settings,
    args: &RunArgs,
    plan: &Plan,
    name: &str,
    interrupts: &mut Interrupts,
) -> Result<u8, Stop> {
    let clonedir = args.vmdir.vmdir.clone();
    // Cloning is short and not interrupted half-way: what it made is discarded below.
    let launched = launch(settings, args, plan, name).await;
    let outcome = match launched {
        Ok(()) => use_clone(settings, args, plan, name, interrupts).await,
        Err(e) => Err(Stop::Failed(e)),
    };
    let keep = args.detach || args.keep;
    if keep && !matches!(outcome, Err(Stop::Interrupted(_))) {
        if args.keep && !args.detach {
            stop_kept(settings, name).await;
        }
        return outcome;
    }
    let (connect, owned) = (settings.cli.global.connect.clone(), name.to_owned());
    let discarded =
        tokio::task::spawn_blocking(move || engine::discard(connect.as_deref(), &clonedir, &owned))
            .await;
    match discarded {
        Ok(Ok(_)) => tracing::debug!("{name} thrown away"),
        Ok(Err(e)) => tracing::error!("cannot throw away the VM {name}: {e}"),
        Err(e) => tracing::error!("the task throwing away {name} died: {e}"),
    }
    outcome
}

async fn launch(
    settings: &Settings,
    args: &RunArgs,
    plan: &Plan,
    name: &str,
) -> anyhow::Result<()> {
    let (source, name) = (args.image.clone(), name.to_owned());
    let (connect, vmdir) = (
        settings.cli.global.connect.clone(),
        args.vmdir.vmdir.clone(),
    );
    let store = store(settings);
    let (keep, cpus, memory_mib) = (args.keep, args.cpus, args.memory);
    let overrides = plan.overrides.clone();
    let (allow_unsafe_xml, quiet) = (args.unsafe_xml.allow_unsafe_xml, quiet(settings));
    tokio::task::spawn_blocking(move || {
        engine::launch(&Launch {
            source: &source,
            name: &name,
            store: &store,
            vmdir: &vmdir,
            clonedir: &vmdir,
            connect: connect.as_deref(),
            keep,
            cpus,
            memory_mib,
            overrides: &overrides,
            allow_unsafe_xml,
            threads: threads(),
            progress: &Reporter::new(quiet),
        })
        .map_err(super::image_failure)
        .with_context(|| format!("cannot start a clone of {source} as {name}"))
    })
    .await
    .context("the clone task died")??;
    Ok(())
}

/// Address, login, shares, ports, then the command (or, detached, the VM's name).
async fn use_clone(
    settings: &Settings,
    args: &RunArgs,
    plan: &Plan,
    name: &str,
    interrupts: &mut Interrupts,
) -> Result<u8, Stop> {
    let deadline = Instant::now() + args.boot_timeout;
    let address = interruptible(interrupts, address(settings, name, args.boot_timeout)).await?;
    tracing::info!("{name} has the address {address}");
    let target = login(settings, args, name, address)?;
    let session = interruptible(interrupts, async {
        Session::connect_with_retry(&target, remaining(deadline))
            .await
            .with_context(|| {
                format!(
                    "cannot log in to {name} as {}@{address}:{}",
                    target.user, target.port
                )
            })
    })
    .await?;
    mount_shares(&session, plan).await?;
    let mut forwards = Vec::new();
    for (listen, guest_port) in &plan.ports {
        let forward = engine::forward(*listen, SocketAddr::new(address, *guest_port))
            .await
            .map_err(anyhow::Error::new)?;
        tracing::info!("forwarding {} to {name}:{guest_port}", forward.listen);
        forwards.push(forward);
    }
    if args.detach {
        println!("{name}");
        return Ok(0);
    }
    let status = command(&session, args, interrupts).await;
    drop(forwards);
    let _ = session.close().await;
    status
}

/// Runs COMMAND with our stdout and stderr, until it ends, `--timeout` or an interrupt.
async fn command(
    session: &Session,
    args: &RunArgs,
    interrupts: &mut Interrupts,
) -> Result<u8, Stop> {
    let command = if args.command.is_empty() {
        "exec ${SHELL:-/bin/sh} -s".to_owned()
    } else {
        args.command.join(" ")
    };
    let interactive = args.command.is_empty() && !args.stdin && crate::terminal::is_interactive();
    let input = if args.stdin {
        Some(read_stdin().await?)
    } else {
        None
    };
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    let mut stopped_by: Option<u8> = None;
    let stop = async {
        let code = match args.timeout {
            Some(limit) => tokio::select! {
                _ = tokio::time::sleep(limit) => TIMED_OUT,
                code = interrupts.next() => code,
            },
            None => interrupts.next().await,
        };
        stopped_by = Some(code);
    };
    let status = if interactive {
        crate::terminal::shell(session, stop).await
    } else {
        session
            .exec_cancellable(&command, input.as_deref(), &mut stdout, &mut stderr, stop)
            .await
    };
    match (status, stopped_by) {
        (_, Some(TIMED_OUT)) => {
            tracing::error!(
                "the command did not end within {:?}",
                args.timeout.unwrap_or_default()
            );
            Ok(TIMED_OUT)
        }
        (_, Some(code)) => Err(Stop::Interrupted(code)),
        (Ok(ExitStatus::Code(code)), None) => Ok(u8::try_from(code).unwrap_or(255)),
        (Ok(ExitStatus::Signal(signal)), None) => {
            tracing::warn!("the command was killed by SIG{signal}");
            Ok(128 + signal_number(&signal))
        }
        (Err(e), None) => Err(Stop::Failed(
            anyhow::Error::new(e).context("the SSH connection to the guest failed"),
        )),
    }
}

/// All of sarde's standard input, for `--stdin`.
async fn read_stdin() -> Result<Vec<u8>, Stop> {
    use tokio::io::AsyncReadExt as _;
    let mut input = Vec::new();
    tokio::io::stdin()
        .read_to_end(&mut input)
        .await
        .context("cannot read standard input for --stdin")?;
    Ok(input)
}

/// The number of a signal name as the guest reports it, for the 128+N exit status.
fn signal_number(name: &str) -> u8 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

async fn address(settings: &Settings, name: &str, timeout: Duration) -> anyhow::Result<IpAddr> {
    let (connect, owned) = (settings.cli.global.connect.clone(), name.to_owned());
    let found = tokio::task::spawn_blocking(move || {
        engine::guest_address(
            connect.as_deref(),
            &owned,
            timeout,
            &[AddressSource::Lease, AddressSource::Arp],
        )
    })
    .await
    .context("the task waiting for the address died")?;
    let (address, _macs) = found
        .map_err(super::image_failure)
        .with_context(|| format!("{name} got no address within {timeout:?}"))?;
    Ok(address)
}

/// The login: the command line's user and key, else the image's sardine config.
fn login(
    settings: &Settings,
    args: &RunArgs,
    name: &str,
    address: IpAddr,
) -> Result<sardine_ssh::Target, Stop> {
    let said = Login {
        user: args.user.clone(),
        identities: args.identity_file.iter().cloned().collect(),
        ..Login::default()
    };
    let libvirt = Libvirt::open_read_only(connect(settings))?;
    let image = libvirt
        .lookup(name)?
        .and_then(|vm| engine::image_config_of_vm(&vm, &store(settings)))
        .map(|config| config.login())
        .unwrap_or_default();
    said.or(image).target(&address.to_string()).map_err(|e| {
        Stop::Failed(anyhow::Error::new(
            Failure::new(exit_code::USAGE, e).with_hint(
                "pass --user (and --identity-file), or give the image a sardine config with users",
            ),
        ))
    })
}

/// Mounts every share in the guest (as root, through sudo for other users).
async fn mount_shares(session: &Session, plan: &Plan) -> anyhow::Result<()> {
    for (share, point) in plan.overrides.shares.iter().zip(&plan.mount_points) {
        let options = if share.readonly { "-o ro " } else { "" };
        let script = format!(
            "s=; [ \"$(id -u)\" = 0 ] || s='sudo -n'; $s mkdir -p {point} && $s mount -t virtiofs {options}{tag} {point}",
            point = shell_quote(point),
            tag = shell_quote(&share.tag),
        );
        let output = session.output(&script).await?;
        if !output.status.success() {
            anyhow::bail!(
                "cannot mount {} at {point} in the guest: {}",
                share.source.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        tracing::info!("{} is mounted at {point}", share.source.display());
    }
    Ok(())
}

/// Shuts a kept clone down (ACPI, then off after a minute).
async fn stop_kept(settings: &Settings, name: &str) {
    let (connect, owned) = (settings.cli.global.connect.clone(), name.to_owned());
    let stopped = tokio::task::spawn_blocking(move || {
        sardine_vm::power::stop(connect.as_deref(), &owned, Duration::from_secs(60))
    })
    .await;
    match stopped {
        Ok(Ok(_)) => {
            tracing::info!("{name} is kept (shut down); remove it with `sarde rm --vm {name}`")
        }
        Ok(Err(e)) => tracing::warn!("cannot shut {name} down: {e}"),
        Err(e) => tracing::warn!("the task shutting {name} down died: {e}"),
    }
}

/// Time left until `deadline` (at least a moment).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500))
}

/// An error of sarde itself, with exit status `code` unless it carries one already.
fn own_failure(code: u8, error: anyhow::Error) -> anyhow::Error {
    if error.downcast_ref::<Failure>().is_some() && code != RUN_FAILED {
        return error;
    }
    let hint = exit_code::hint_of(&error).map(str::to_owned);
    exit_code::failure(code, error, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_take_a_tag_or_a_guest_directory() {
        let (share, point) = parse_mount("/srv/src", 0).unwrap();
        assert_eq!(
            (share.tag.as_str(), point.as_str(), share.readonly),
            ("host", "/host", false)
        );
        let (share, point) = parse_mount("./data:/mnt/data:ro", 1).unwrap();
        assert_eq!(
            (share.tag.as_str(), point.as_str(), share.readonly),
            ("host1", "/mnt/data", true)
        );
        assert_eq!(share.source, PathBuf::from("./data"));
        let (share, point) = parse_mount("/a:cache", 2).unwrap();
        assert_eq!((share.tag.as_str(), point.as_str()), ("cache", "/cache"));
        assert!(parse_mount(":x", 0).is_err());
        assert!(parse_mount("/a:bad tag", 0).is_err());
    }

    #[test]
    fn ports_default_to_loopback() {
        assert_eq!(
            parse_publish("2222:22").unwrap(),
            ("127.0.0.1:2222".parse().unwrap(), 22)
        );
        assert_eq!(
            parse_publish("0.0.0.0:8080:80").unwrap(),
            ("0.0.0.0:8080".parse().unwrap(), 80)
        );
        assert_eq!(
            parse_publish("[::1]:8080:80").unwrap(),
            ("[::1]:8080".parse().unwrap(), 80)
        );
        for bad in ["22", "x:22", "1:0", "host:1:2"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn disks_are_read_only_unless_rw() {
        assert!(parse_disk("/d.raw").readonly);
        assert!(!parse_disk("/d.qcow2:rw").readonly);
        assert_eq!(parse_disk("/d.qcow2:rw").path, PathBuf::from("/d.qcow2"));
    }
}
