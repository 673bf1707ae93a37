//! `cleanup`: destroy the job's VM and remove what a half-finished prepare left behind.
//!
//! Safe to run twice, after a failed prepare, or when nothing was ever created: a missing VM is
//! not an error. Only `gitlab-<job id>` and `<clonedir>/gitlab-<job id>/` are touched; base VMs
//! and the image store stay (pruning them is `sarde prune`'s job). sardinecake 0.4.2 failed when
//! there was no VM to destroy.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sardine_libvirt::{Libvirt, LibvirtError, VmState};

use crate::exit::Outcome;
use crate::stages::StageContext;

/// Removes the job's VM and its leftovers.
pub async fn cleanup(ctx: &StageContext) -> anyhow::Result<Outcome> {
    let name = ctx.job.vm_name()?;
    let removed = remove_job_vm(
        ctx.settings.connect.clone(),
        ctx.settings.clonedir.clone(),
        name.clone(),
    )
    .await?;
    if !removed {
        tracing::info!("nothing to clean up for {name}");
    }
    Ok(Outcome::Success)
}

/// Destroys (and undefines, if it is persistent) the VM `name` and deletes `<clonedir>/<name>/`;
/// returns whether there was anything to remove.
pub async fn remove_job_vm(
    connect: Option<String>,
    clonedir: PathBuf,
    name: String,
) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let vm = remove_domain(connect.as_deref(), &name)?;
        let dir = remove_clone_dir(&clonedir, &name)?;
        Ok(vm || dir)
    })
    .await
    .context("the cleanup task died")?
}

fn remove_domain(connect: Option<&str>, name: &str) -> anyhow::Result<bool> {
    let libvirt = Libvirt::open(connect)?;
    let Some(vm) = libvirt.lookup(name)? else {
        return Ok(false);
    };
    match vm.state() {
        Ok(VmState::ShutOff) => {}
        Ok(_) => {
            gone_is_fine(vm.destroy())
                .with_context(|| format!("cannot destroy the job's VM {name}"))?;
            tracing::info!("destroyed VM {name}");
        }
        Err(e) if e.is_no_domain() => return Ok(true),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the state of the job's VM {name}"));
        }
    }
    if gone_is_fine(vm.is_persistent())?.unwrap_or(false) {
        gone_is_fine(vm.undefine())
            .with_context(|| format!("cannot undefine the job's VM {name}"))?;
        tracing::info!("undefined VM {name}");
    }
    Ok(true)
}

/// `Ok(None)` when libvirt says the domain is gone (a transient VM vanishes when destroyed).
fn gone_is_fine<T>(result: Result<T, LibvirtError>) -> Result<Option<T>, LibvirtError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_no_domain() => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_clone_dir(clonedir: &Path, name: &str) -> anyhow::Result<bool> {
    let dir = clonedir.join(name);
    if fs_err::symlink_metadata(&dir).is_err() {
        return Ok(false);
    }
    fs_err::remove_dir_all(&dir)
        .with_context(|| format!("cannot remove the job's clone directory {}", dir.display()))?;
    tracing::info!("removed {}", dir.display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_dir_is_removed_once() {
        let clonedir = tempfile::tempdir().unwrap();
        let dir = clonedir.path().join("gitlab-5");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("data.qcow2"), "x").unwrap();
        fs_err::create_dir_all(clonedir.path().join("gitlab-6")).unwrap();
        assert!(remove_clone_dir(clonedir.path(), "gitlab-5").unwrap());
        assert!(!dir.exists());
        assert!(
            clonedir.path().join("gitlab-6").exists(),
            "other jobs' directories stay"
        );
        assert!(!remove_clone_dir(clonedir.path(), "gitlab-5").unwrap());
    }

    #[test]
    fn missing_domain_is_nothing_to_do() {
        assert!(!remove_domain(Some("test:///default"), "gitlab-does-not-exist").unwrap());
    }
}
