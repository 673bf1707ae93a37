//! `sarde ip` and `sarde ssh`: reaching a running VM.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use sardine_ssh::{Login, Session, SshError, Target};
use sardine_vm::{AddressSource, Libvirt, Vm};

use super::{connect, store};
use crate::cli::{self, IpArgs, SshArgs};
use crate::exit_code::{self, Failure, ResultExt};
use crate::settings::Settings;

/// `sarde ip`: prints the VM's IPv4 address.
pub fn ip(settings: &Settings, args: &IpArgs) -> anyhow::Result<()> {
    let source = match args.source {
        cli::AddressSource::Lease => AddressSource::Lease,
        cli::AddressSource::Arp => AddressSource::Arp,
        cli::AddressSource::Agent => AddressSource::Agent,
    };
    let vm = find_vm(settings, &args.vm, &[source])?;
    let address = address(&vm, args.wait.unwrap_or_default(), &[source])?;
    let line = match args.format {
        cli::OutputFormat::Json => {
            serde_json::json!({"vm": vm.name(), "address": address.to_string()}).to_string()
        }
        cli::OutputFormat::Text => address.to_string(),
    };
    writeln!(std::io::stdout(), "{line}")?;
    Ok(())
}

/// `sarde ssh`: runs COMMAND in the VM (or, on a terminal, an interactive login shell on a
/// pseudo-terminal) and exits with its status.
pub fn ssh(settings: &Settings, args: &SshArgs) -> anyhow::Result<ExitCode> {
    let sources = [
        AddressSource::Lease,
        AddressSource::Arp,
        AddressSource::Agent,
    ];
    let vm = find_vm(settings, &args.vm, &sources)?;
    let host = address(&vm, Duration::from_secs(60), &sources)?;
    let target = ssh_target(settings, &vm, host, args)?;
    // Like OpenSSH: the words are joined with spaces and the remote shell parses the result.
    let command = if args.command.is_empty() {
        "exec $SHELL -l".to_owned()
    } else {
        args.command.join(" ")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let interactive = args.command.is_empty() && crate::terminal::is_interactive();
    let status = runtime.block_on(async {
        let session = Session::connect_with_retry(&target, Duration::from_secs(60)).await?;
        let status = if interactive {
            crate::terminal::shell(&session, std::future::pending()).await?
        } else {
            let mut stdout = tokio::io::stdout();
            let mut stderr = tokio::io::stderr();
            session
                .exec(&command, None, &mut stdout, &mut stderr)
                .await?
        };
        session.close().await?;
        anyhow::Ok(status)
    });
    // The terminal's reader may still wait for a key: do not wait for it.
    runtime.shutdown_background();
    let status = status.exit_code(exit_code::NETWORK)?;
    let code = status.code().unwrap_or(255);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// The VM `name`, on a connection that can ask `sources`: libvirt answers guest-agent queries
/// on read-write connections only, so those open one (read-only if that is refused and other
/// sources are left).
fn find_vm(settings: &Settings, name: &str, sources: &[AddressSource]) -> anyhow::Result<Vm> {
    let uri = connect(settings);
    let libvirt = if sources.contains(&AddressSource::Agent) {
        match Libvirt::open(uri) {
            Err(e) if sources.len() == 1 => Err(e),
            Err(e) => {
                tracing::debug!("read-write connection refused ({e}); not asking the guest agent");
                Libvirt::open_read_only(uri)
            }
            ok => ok,
        }
    } else {
        Libvirt::open_read_only(uri)
    }
    .exit_code(exit_code::LIBVIRT)?;
    libvirt
        .lookup(name)
        .exit_code(exit_code::LIBVIRT)?
        .ok_or_else(|| {
            anyhow::Error::new(Failure::new(
                exit_code::NOT_FOUND,
                anyhow::anyhow!("VM {name:?} not found"),
            ))
        })
}

fn address(vm: &Vm, wait: Duration, sources: &[AddressSource]) -> anyhow::Result<IpAddr> {
    vm.wait_for_address(wait, sources)
        .map_err(|e| {
            Failure::new(exit_code::NOT_FOUND, e)
                .with_hint("is the VM running? give it time with --wait 60")
        })
        .map_err(anyhow::Error::new)
}

/// User, keys, password and port: the command line, else the sardine config of the image the
/// VM was imported from (recorded in its domain metadata): its first user and `ssh` service.
fn ssh_target(
    settings: &Settings,
    vm: &Vm,
    host: IpAddr,
    args: &SshArgs,
) -> anyhow::Result<Target> {
    let said = Login {
        user: args.user.clone(),
        identities: args.identity_file.iter().cloned().collect(),
        ..Login::default()
    };
    let image =
        sardine_vm::run::image_config_of_vm(vm, &store(settings)).map(|config| config.login());
    match said.or(image.unwrap_or_default()).target(&host.to_string()) {
        Err(e @ SshError::NoUser { .. }) => {
            Err(anyhow::Error::new(e)).exit_code(exit_code::USAGE).hint(
                "pass --user (and --identity-file), or give the image a sardine config with users",
            )
        }
        other => Ok(other?),
    }
}
