//! `sarde start` and `sarde stop`: a VM's power, as `docker start/stop` and `tart stop` do it.
//!
//! Stopping asks the guest to shut down (ACPI) and waits; a guest that is still running when the
//! time is up is powered off, like `docker stop` kills a container after its grace period.

use std::time::Duration;

use sardine_libvirt::{Libvirt, VmState};

use crate::error::ImageError;

/// How [`stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running.
    AlreadyOff,
    /// The guest shut itself down.
    ShutDown,
    /// It was powered off (asked to, or the guest did not shut down in time).
    PoweredOff,
}

/// Starts the VM `name`; `false` if it was running already.
pub fn start(connect: Option<&str>, name: &str) -> Result<bool, ImageError> {
    let vm = crate::find_vm(&Libvirt::open(connect)?, name)?;
    if vm.state()? == VmState::Running {
        return Ok(false);
    }
    vm.start()?;
    tracing::info!("started VM {}", vm.name());
    Ok(true)
}

/// Shuts the VM `name` down, waiting up to `timeout` before powering it off; with `timeout`
/// zero it is powered off at once.
pub fn stop(connect: Option<&str>, name: &str, timeout: Duration) -> Result<Stopped, ImageError> {
    let vm = crate::find_vm(&Libvirt::open(connect)?, name)?;
    if vm.state()? == VmState::ShutOff {
        return Ok(Stopped::AlreadyOff);
    }
    if !timeout.is_zero() {
        vm.shutdown()?;
        match vm.wait_for_shutoff(timeout) {
            Ok(()) => {
                tracing::info!("VM {} shut down", vm.name());
                return Ok(Stopped::ShutDown);
            }
            Err(sardine_libvirt::LibvirtError::StillRunning { .. }) => tracing::warn!(
                "VM {} did not shut down within {timeout:?}: powering it off",
                vm.name()
            ),
            Err(e) => return Err(e.into()),
        }
    }
    vm.destroy()?;
    tracing::info!("VM {} powered off", vm.name());
    Ok(Stopped::PoweredOff)
}
