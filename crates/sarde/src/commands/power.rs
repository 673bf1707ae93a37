//! `sarde start` and `sarde stop`: a VM's power.

use std::time::Duration;

use sardine_vm::power::Stopped;

use super::{connect, image_failure};
use crate::cli::{StartArgs, StopArgs};
use crate::settings::Settings;

/// `sarde start`: starts each VM (one that runs already is fine).
pub fn start(settings: &Settings, args: &StartArgs) -> anyhow::Result<()> {
    for vm in &args.vms {
        if !sardine_vm::power::start(connect(settings), vm).map_err(image_failure)? {
            tracing::info!("VM {vm} is running already");
        }
    }
    Ok(())
}

/// `sarde stop`: shuts each VM down, powering it off after `--timeout` (at once with `--force`).
pub fn stop(settings: &Settings, args: &StopArgs) -> anyhow::Result<()> {
    let timeout = if args.force {
        Duration::ZERO
    } else {
        args.timeout
    };
    for vm in &args.vms {
        let stopped =
            sardine_vm::power::stop(connect(settings), vm, timeout).map_err(image_failure)?;
        if stopped == Stopped::AlreadyOff {
            tracing::info!("VM {vm} is not running");
        }
    }
    Ok(())
}
