//! Getting the job's image into the local store, once even when many jobs want it at once.
//!
//! The pull policy and the fetch lock are `sarde run`'s ([`sardine_vm::run::ensure_image`]):
//! one lock file per repository serialises the fetches of concurrent jobs and runs, the first
//! downloads, the others wait and then find every blob present. sardinecake 0.4.2 ran parallel
//! `skopeo copy` into one unlocked `index.json` (W6). Here: which registry credentials a job
//! gets.

use std::sync::Arc;

use sardine_vm::remote::{DEFAULT_REGISTRY, RegistryAccess};
use sardine_vm::{Credentials, NoProgress, Reference, Store};

use crate::Hinted;
use crate::env::JobEnv;
use crate::logging::Step;
use crate::settings::{PullPolicy, Settings};

/// Makes sure `reference` is in the local store, following the pull policy, one fetch per
/// image at a time ([`sardine_vm::run::ensure_image`]).
pub async fn ensure_image(
    settings: &Settings,
    job: &JobEnv,
    reference: &Reference,
) -> anyhow::Result<()> {
    let store = Store::new(&settings.ocidir);
    let policy = match settings.pull_policy {
        PullPolicy::Never => sardine_vm::run::PullPolicy::Never,
        PullPolicy::IfNotPresent => sardine_vm::run::PullPolicy::Missing,
        PullPolicy::Always => sardine_vm::run::PullPolicy::Always,
    };
    let registry = reference.registry().unwrap_or(DEFAULT_REGISTRY);
    let access = RegistryAccess {
        insecure: settings.is_insecure(registry),
        credentials: job_credentials(job, registry),
        ..RegistryAccess::default()
    };
    let step = Step::start(format!("fetching {reference} (pull-policy {policy:?})"));
    let fetched = sardine_vm::run::ensure_image(
        &store,
        reference,
        policy,
        &access,
        settings.auto_prune,
        settings.connect.as_deref(),
        Arc::new(NoProgress),
    )
    .await;
    match fetched {
        Ok(Some(report)) => step.done_with(&format!(
            "{} blobs ({} bytes) downloaded, {} already present",
            report.downloaded, report.bytes, report.skipped
        )),
        Ok(None) => step.done_with("using the local store's copy"),
        Err(sardine_vm::ImageError::ImageNotFound { .. })
            if policy == sardine_vm::run::PullPolicy::Never =>
        {
            return Err(not_local(&store, reference));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot fetch {reference} into {}",
                store.root().display()
            )));
        }
    }
    Ok(())
}

/// The error for an image that is not in the local store, with a hint.
fn not_local(store: &Store, reference: &Reference) -> anyhow::Error {
    anyhow::Error::msg(Hinted {
        message: format!(
            "image {reference} is not in the local store {}",
            store.root().display()
        ),
        hint: format!("fetch it (`sarde fetch {reference}`) or use another pull-policy"),
    })
}

/// The job's own registry credentials (`CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD`, valid for this
/// job only) for the project's registry; `None` for other registries, which get the runner
/// host's stored ones.
fn job_credentials(job: &JobEnv, registry: &str) -> Option<Credentials> {
    if job.registry.as_deref() == Some(registry)
        && let (Some(username), Some(password)) = (&job.registry_user, &job.registry_password)
    {
        tracing::debug!("using the job's CI_REGISTRY credentials for {registry}");
        return Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_credentials_only_for_the_job_registry() {
        let job = JobEnv {
            registry: Some("registry.example:5050".into()),
            registry_user: Some("gitlab-ci-token".into()),
            registry_password: Some("job-token".into()),
            ..JobEnv::default()
        };
        let creds = job_credentials(&job, "registry.example:5050").unwrap();
        assert_eq!(creds.username, "gitlab-ci-token");
        assert_eq!(creds.password, "job-token");
    }
}
