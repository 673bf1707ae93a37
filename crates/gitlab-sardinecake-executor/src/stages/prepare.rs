//! `prepare`: fetch the job's image, start a throwaway clone of it as `gitlab-<job id>`, wait
//! for its address and an SSH login, and run the optional prepare script.
//!
//! Every step is logged with its duration (prepare's stderr is in the job log). Failures of the
//! infrastructure are system failures with a message that says what failed; only a failing
//! prepare script (the administrator's check of the guest) fails the job as a build failure.
//! Unlike sardinecake 0.4.2: the SSH login is retried until the deadline instead of tried once
//! (W15), the job VM is put on the configured network behind an anti-spoofing filter whatever
//! its image says, its identity is checked and recorded for the run stages (crate::identity),
//! and a fetch failure is a system failure rather than skopeo's exit status (W14).

use std::time::{Duration, Instant};

use anyhow::Context;
use sardine_ssh::ExitStatus;
use sardine_vm::clone::{CloneMode, CloneOptions, Network};
use sardine_vm::import::{ImportOptions, Imported};
use sardine_vm::{NoProgress, Reference, Store};

use crate::exit::Outcome;
use crate::guest::{self, ScriptEnd};
use crate::identity::{self, Identity};
use crate::logging::Step;
use crate::stages::{StageContext, cleanup};
use crate::{fetch, settings::Settings};

/// Brings the job's VM up.
pub async fn prepare(ctx: &StageContext) -> anyhow::Result<Outcome> {
    let settings = &ctx.settings;
    let name = ctx.job.vm_name()?;
    let reference = settings.reference()?;
    settings.check_image_allowed()?;
    tracing::info!("preparing VM {name} from image {reference}");

    if cleanup::remove_job_vm(
        settings.connect.clone(),
        settings.clonedir.clone(),
        name.clone(),
    )
    .await?
    {
        tracing::info!("removed the leftovers of an earlier attempt of this job");
    }
    fetch::ensure_image(settings, &ctx.job, &reference).await?;
    let base = import(settings, &reference).await?;
    start_clone(settings, &base.name, &name).await?;
    // The clone is defined: prune may judge the base VM again (it sees the clone).
    drop(base);

    let deadline = Instant::now() + settings.timeout;
    let step = Step::start(format!("waiting for the address of {name}"));
    let (address, macs) = guest::address(settings, &name, remaining(deadline))
        .await
        .with_context(|| format!("the job's VM {name} got no address of its own"))?;
    step.done_with(&address.to_string());

    let target = guest::ssh_target(settings, ctx.image_config().as_ref(), &address.to_string())?;
    let step = Step::start(format!(
        "waiting for an SSH login as {}@{address}:{}",
        target.user, target.port
    ));
    let session = guest::connect(&target, remaining(deadline)).await?;
    identity::check_guest_mac(&session, &name, address, &macs).await?;
    step.done_with(session.host_key());
    let identity = Identity {
        address,
        macs,
        host_key: session.host_key().to_owned(),
    };
    identity
        .save(&Identity::path(&settings.clonedir, &name))
        .context("cannot record the job VM's identity")?;

    let outcome = match &settings.prepare_script {
        Some(path) => run_prepare_script(&session, path, &name).await?,
        None => Outcome::Success,
    };
    if let Err(e) = session.close().await {
        tracing::debug!("closing the SSH session: {e}");
    }
    if outcome == Outcome::Success {
        tracing::info!("VM {name} is ready");
    }
    Ok(outcome)
}

/// Time left until `deadline` (at least a moment, so that one last try is made).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500))
}

/// Imports the image as a base VM, once per image ID: concurrent jobs wait for the first.
async fn import(settings: &Settings, reference: &Reference) -> anyhow::Result<Imported> {
    let step = Step::start(format!("importing {reference}"));
    let (store, reference_owned) = (Store::new(&settings.ocidir), reference.clone());
    let (vmdir, connect, auto_prune) = (
        settings.vmdir.clone(),
        settings.connect.clone(),
        settings.auto_prune,
    );
    let imported = tokio::task::spawn_blocking(move || {
        sardine_vm::import::import(&ImportOptions {
            store: &store,
            reference: &reference_owned,
            name: None,
            vmdir: &vmdir,
            connect: connect.as_deref(),
            allow_unsafe_xml: false,
            threads: threads(),
            auto_prune,
            max_disk_size: sardine_vm::import::DEFAULT_MAX_DISK_SIZE,
            progress: &NoProgress,
        })
    })
    .await
    .context("the import task died")?
    .with_context(|| {
        format!(
            "cannot import {reference} as a base VM into {}",
            settings.vmdir.display()
        )
    })?;
    if imported.existed {
        step.done_with(&format!("base VM {} was there already", imported.name));
    } else {
        step.done_with(&format!("base VM {}", imported.name));
    }
    Ok(imported)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Starts the job's VM: a transient copy-on-write clone of `base`, gone when it stops.
async fn start_clone(settings: &Settings, base: &str, name: &str) -> anyhow::Result<()> {
    let step = Step::start(format!("starting {name} as a clone of {base}"));
    let (base_owned, name_owned) = (base.to_owned(), name.to_owned());
    let (clonedir, connect) = (settings.clonedir.clone(), settings.connect.clone());
    let (memory_mib, vcpus) = (settings.memory_mib, settings.cpus);
    let (max_memory_mib, max_vcpus) = (settings.max_memory_mib, settings.max_cpus);
    let (network, filter) = (settings.network.clone(), settings.network_filter.clone());
    tokio::task::spawn_blocking(move || {
        sardine_vm::clone::clone(&CloneOptions {
            source: &base_owned,
            target: &name_owned,
            clonedir: &clonedir,
            connect: connect.as_deref(),
            mode: CloneMode::Ephemeral,
            image: None,
            allow_unsafe_xml: false,
            memory_mib,
            vcpus,
            owner: Some(crate::stages::OWNER),
            max_memory_mib: Some(max_memory_mib),
            max_vcpus: Some(max_vcpus),
            network: Some(Network {
                name: &network,
                filter: filter.as_deref(),
            }),
            overrides: &sardine_vm::clone::Overrides::default(),
        })
    })
    .await
    .context("the clone task died")?
    .with_context(|| format!("cannot start the job's VM {name} from {base}"))?;
    step.done();
    Ok(())
}

/// Runs the administrator's prepare script in the guest; its failure fails the job.
async fn run_prepare_script(
    session: &sardine_ssh::Session,
    path: &std::path::Path,
    name: &str,
) -> anyhow::Result<Outcome> {
    let script = fs_err::read(path).context("cannot read the prepare script")?;
    let step = Step::start(format!("running the prepare script {}", path.display()));
    let file_name = guest::remote_file_name(name, "prepare");
    match guest::run_script(session, &script, &file_name, std::future::pending()).await? {
        ScriptEnd::Finished(ExitStatus::Code(0)) => {
            step.done();
            Ok(Outcome::Success)
        }
        ScriptEnd::Finished(status) => {
            tracing::error!("the prepare script {} failed with {status}", path.display());
            Ok(Outcome::BuildFailure)
        }
        ScriptEnd::Cancelled => Ok(Outcome::BuildFailure),
    }
}
