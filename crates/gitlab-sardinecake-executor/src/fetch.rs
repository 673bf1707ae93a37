//! Getting the job's image into the local store, once even when many jobs want it at once.
//!
//! A lock file per image (`<ocidir>/.sardine/locks/executor-fetch-<image>.lock`) serialises the
//! fetches of concurrent jobs: the first downloads, the others wait and then find every blob
//! present (only the manifest is asked for again). sardinecake 0.4.2 ran parallel `skopeo copy`
//! into one unlocked `index.json` (W6).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sardine_vm::fetch::FetchOptions;
use sardine_vm::remote::{DEFAULT_REGISTRY, RegistryAccess};
use sardine_vm::store::LocalImage;
use sardine_vm::{Credentials, NoProgress, Reference, Store};

use crate::Hinted;
use crate::env::JobEnv;
use crate::logging::Step;
use crate::settings::{PullPolicy, Settings};

/// Makes sure `reference` is in the local store, following the pull policy.
pub async fn ensure_image(
    settings: &Settings,
    job: &JobEnv,
    reference: &Reference,
) -> anyhow::Result<()> {
    let store = Store::new(&settings.ocidir);
    match settings.pull_policy {
        PullPolicy::Never => {
            open_local(&store, reference)?;
            tracing::info!("using {reference} from the local store (pull-policy never)");
            return Ok(());
        }
        PullPolicy::IfNotPresent if LocalImage::open(&store, reference).is_ok() => {
            tracing::info!("using {reference} from the local store (pull-policy if-not-present)");
            return Ok(());
        }
        PullPolicy::IfNotPresent | PullPolicy::Always => {}
    }
    let lock_path = fetch_lock_path(&store, reference);
    let _lock = tokio::task::spawn_blocking(move || sardine_vm::lock::lock_exclusive(&lock_path))
        .await
        .context("the task waiting for the fetch lock died")?
        .context("cannot take the fetch lock of the image")?;
    let step = Step::start(format!("fetching {reference}"));
    let registry = reference.registry().unwrap_or(DEFAULT_REGISTRY);
    let access = RegistryAccess {
        insecure: settings.is_insecure(registry),
        credentials: job_credentials(job, registry),
        ..RegistryAccess::default()
    };
    let report = sardine_vm::fetch::fetch(&FetchOptions {
        store: &store,
        remote: reference,
        local: reference,
        access: &access,
        arch: None,
        auto_prune: settings.auto_prune,
        connect: settings.connect.as_deref(),
        progress: Arc::new(NoProgress),
    })
    .await
    .with_context(|| format!("cannot fetch {reference} into {}", store.root().display()))?;
    step.done_with(&format!(
        "{} blobs ({} bytes) downloaded, {} already present",
        report.downloaded, report.bytes, report.skipped
    ));
    Ok(())
}

/// Opens the image in the local store, with a hint when it is not there.
fn open_local(store: &Store, reference: &Reference) -> anyhow::Result<LocalImage> {
    LocalImage::open(store, reference).with_context(|| Hinted {
        message: format!(
            "image {reference} is not in the local store {}",
            store.root().display()
        ),
        hint: format!("fetch it (`sarde fetch {reference}`) or use another pull-policy"),
    })
}

/// The lock file for fetching `reference`: its name, escaped to one safe file name.
fn fetch_lock_path(store: &Store, reference: &Reference) -> PathBuf {
    let mut name = String::from("executor-fetch-");
    for byte in reference.name().bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => name.push(char::from(byte)),
            other => name.push_str(&format!("_{other:02x}")),
        }
    }
    name.push_str(".lock");
    store.root().join(".sardine").join("locks").join(name)
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
    fn lock_names_are_single_safe_file_names() {
        let store = Store::new("/o");
        let reference = Reference::parse("localhost:5000/team/vm_x:1").unwrap();
        let path = fetch_lock_path(&store, &reference);
        assert_eq!(
            path,
            PathBuf::from("/o/.sardine/locks/executor-fetch-localhost_3a5000_2fteam_2fvm_5fx.lock")
        );
        let other = Reference::parse("localhost:5000/team/vm_x:2").unwrap();
        assert_eq!(
            fetch_lock_path(&store, &other),
            path,
            "one lock per repository, whatever the tag"
        );
    }

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
