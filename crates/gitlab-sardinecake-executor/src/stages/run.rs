//! `run SCRIPT STAGE`: run one of the scripts gitlab-runner generated inside the job's VM,
//! streaming its output into the job log.
//!
//! A script that fails exits with `BUILD_FAILURE_EXIT_CODE` and leaves its real status in
//! `BUILD_EXIT_CODE_FILE` (so a script's `exit 2` is never taken for a system failure, and
//! `allow_failure: exit_codes` works). A VM that is gone or unreachable is a system failure.
//! SIGTERM from the runner (cancel, timeout) is passed on to the script, and the stage ends at
//! once. Before the script, the guest must prove it is the job's VM (same address as in
//! prepare, the host key prepare pinned, the VM's MAC: crate::identity). Unlike sardinecake 0.4.2 (W13, W16), the script is read as bytes, the image comes from
//! the same settings as in prepare, and every failure has its own exit status.

use std::path::Path;

use anyhow::{Context, bail};
use sardine_ssh::ExitStatus;
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::{self, Outcome};
use crate::guest::{self, ScriptEnd};
use crate::identity::{self, Identity};
use crate::stages::StageContext;

/// Runs `script` (a file on this host) for the runner's stage `stage`.
pub async fn run(ctx: &StageContext, script: &Path, stage: &str) -> anyhow::Result<Outcome> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let name = ctx.job.vm_name()?;
    let bytes = fs_err::read(script).context("cannot read the job's script")?;
    let settings = &ctx.settings;

    let login = async {
        let (address, _) = guest::address(settings, &name, settings.timeout).await?;
        let identity = Identity::load(&Identity::path(&settings.clonedir, &name))?;
        if address != identity.address {
            bail!(
                "the job's VM {name} now has the address {address}, not {} as in prepare: \
                 another guest may answer there",
                identity.address
            );
        }
        let target =
            guest::ssh_target(settings, ctx.image_config().as_ref(), &address.to_string())?
                .pinned(&identity.host_key);
        let session = guest::connect(&target, settings.timeout).await?;
        identity::check_guest_mac(&session, &name, address, &identity.macs).await?;
        anyhow::Ok(session)
    };
    let session = tokio::select! {
        session = login => session?,
        _ = terminate.recv() => {
            tracing::warn!("cancelled before {stage} started");
            return Ok(Outcome::BuildFailure);
        }
    };
    let file_name = guest::remote_file_name(&name, stage);
    let cancel = async {
        terminate.recv().await;
    };
    let end = guest::run_script(&session, &bytes, &file_name, cancel).await;
    if let Err(e) = session.close().await {
        tracing::debug!("closing the SSH session: {e}");
    }
    Ok(outcome(
        end?,
        ctx.job.build_exit_code_file.as_deref(),
        stage,
    ))
}

/// Turns how the script ended into the stage's outcome, recording a failed script's status.
fn outcome(end: ScriptEnd, exit_code_file: Option<&Path>, stage: &str) -> Outcome {
    match end {
        ScriptEnd::Finished(ExitStatus::Code(0)) => Outcome::Success,
        ScriptEnd::Finished(status) => {
            tracing::debug!("{stage} ended with {status}");
            if let (Some(path), Some(code)) = (exit_code_file, status.code())
                && let Err(e) = exit::write_build_exit_code(path, code)
            {
                tracing::warn!("cannot record the exit status {code}: {e}");
            }
            Outcome::BuildFailure
        }
        ScriptEnd::Cancelled => {
            tracing::warn!("{stage} was cancelled; SIGTERM was sent to the script");
            Outcome::BuildFailure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("build_exit_code");
        assert_eq!(
            outcome(
                ScriptEnd::Finished(ExitStatus::Code(0)),
                Some(&file),
                "build_script"
            ),
            Outcome::Success
        );
        assert!(!file.exists());
    }

    #[test]
    fn failure_records_the_real_status() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("build_exit_code");
        assert_eq!(
            outcome(
                ScriptEnd::Finished(ExitStatus::Code(2)),
                Some(&file),
                "build_script"
            ),
            Outcome::BuildFailure
        );
        assert_eq!(fs_err::read_to_string(&file).unwrap(), "2\n");
        assert_eq!(
            outcome(
                ScriptEnd::Finished(ExitStatus::Code(3)),
                None,
                "build_script"
            ),
            Outcome::BuildFailure
        );
    }

    #[test]
    fn signals_and_cancellation_are_build_failures_without_a_status() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("build_exit_code");
        let killed = ScriptEnd::Finished(ExitStatus::Signal("KILL".into()));
        assert_eq!(
            outcome(killed, Some(&file), "build_script"),
            Outcome::BuildFailure
        );
        assert_eq!(
            outcome(ScriptEnd::Cancelled, Some(&file), "build_script"),
            Outcome::BuildFailure
        );
        assert!(!file.exists());
    }
}
