//! `cleanup`: destroy the job's VM and remove what a half-finished prepare left behind.
//!
//! Safe to run twice, after a failed prepare, or when nothing was ever created: a missing VM is
//! not an error. Only the job's VM, `<clonedir>/<vm>/` and `<clonedir>/<vm>.identity` are touched; base VMs
//! and the image store stay (pruning them is `sarde prune`'s job). sardinecake 0.4.2 failed when
//! there was no VM to destroy. The removal is sardine-vm's (as for `sarde rm`): the clone
//! directory is moved aside before the VM is undefined, and a cleanup killed halfway is finished
//! by the next one.

use std::path::PathBuf;

use anyhow::Context;

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

/// Destroys (and undefines, if it is persistent) the VM `name` and deletes `<clonedir>/<name>/`
/// ([`sardine_vm::remove::discard_vm`]); returns whether there was anything to remove.
pub async fn remove_job_vm(
    connect: Option<String>,
    clonedir: PathBuf,
    name: String,
) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let removed =
            sardine_vm::remove::discard_vm(connect.as_deref(), &name, &clonedir, super::OWNER)
                .with_context(|| {
                    format!("cannot remove the job's VM {name} and its clone directory")
                })?;
        let identity = crate::identity::Identity::path(&clonedir, &name);
        match fs_err::remove_file(&identity) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(removed),
            Err(e) => Err(e).context("cannot remove the job VM's identity record"),
        }
    })
    .await
    .context("the cleanup task died")?
}
