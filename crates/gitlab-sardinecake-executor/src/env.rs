//! The environment gitlab-runner gives every stage, and the job's VM name.
//!
//! The runner passes its own variables unprefixed (`BUILD_FAILURE_EXIT_CODE`, ...) and every job
//! variable as `CUSTOM_ENV_<NAME>`. Unlike sardinecake 0.4.2, unprefixed `CI_JOB_ID` and
//! `CI_JOB_IMAGE` are not read: they would come from the runner's own environment, not the job.

use std::path::PathBuf;

/// Exit status for a failure of the job's own code.
pub const BUILD_FAILURE_EXIT_CODE: &str = "BUILD_FAILURE_EXIT_CODE";
/// Exit status for a failure of the infrastructure.
pub const SYSTEM_FAILURE_EXIT_CODE: &str = "SYSTEM_FAILURE_EXIT_CODE";
/// File that receives a failed script's real exit status (runner 17.9 and later).
pub const BUILD_EXIT_CODE_FILE: &str = "BUILD_EXIT_CODE_FILE";
/// The job's ID, unique per GitLab instance.
pub const CI_JOB_ID: &str = "CUSTOM_ENV_CI_JOB_ID";
/// The job's `image:` (only set when the job has one).
pub const CI_JOB_IMAGE: &str = "CUSTOM_ENV_CI_JOB_IMAGE";
/// The project's container registry (`host[:port]`).
pub const CI_REGISTRY: &str = "CUSTOM_ENV_CI_REGISTRY";
/// User for [`CI_REGISTRY`] (valid for this job only).
pub const CI_REGISTRY_USER: &str = "CUSTOM_ENV_CI_REGISTRY_USER";
/// Password for [`CI_REGISTRY`] (the job token).
pub const CI_REGISTRY_PASSWORD: &str = "CUSTOM_ENV_CI_REGISTRY_PASSWORD";

/// The GitLab instance's host (job IDs are unique only per instance).
pub const CI_SERVER_HOST: &str = "CUSTOM_ENV_CI_SERVER_HOST";
/// The runner's ID on that instance.
pub const CI_RUNNER_ID: &str = "CUSTOM_ENV_CI_RUNNER_ID";
/// Longest job ID (after escaping) used in a VM name; GitLab's IDs are far shorter.
const MAX_ID_LEN: usize = 100;

/// What the executor uses of a job's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobEnv {
    /// `CUSTOM_ENV_CI_JOB_ID`.
    pub job_id: Option<String>,
    /// `CUSTOM_ENV_CI_JOB_IMAGE`.
    pub image: Option<String>,
    /// `CUSTOM_ENV_CI_REGISTRY`.
    pub registry: Option<String>,
    /// `CUSTOM_ENV_CI_REGISTRY_USER`.
    pub registry_user: Option<String>,
    /// `CUSTOM_ENV_CI_REGISTRY_PASSWORD`.
    pub registry_password: Option<String>,
    /// `BUILD_EXIT_CODE_FILE`.
    pub build_exit_code_file: Option<PathBuf>,
    /// `CUSTOM_ENV_CI_SERVER_HOST`.
    pub server_host: Option<String>,
    /// `CUSTOM_ENV_CI_RUNNER_ID`.
    pub runner_id: Option<String>,
}

impl JobEnv {
    /// Reads the job's variables; empty values count as unset.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> JobEnv {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        JobEnv {
            job_id: get(CI_JOB_ID).map(|id| id.trim().to_owned()),
            image: get(CI_JOB_IMAGE).map(|image| image.trim().to_owned()),
            registry: get(CI_REGISTRY),
            registry_user: get(CI_REGISTRY_USER),
            registry_password: get(CI_REGISTRY_PASSWORD),
            build_exit_code_file: get(BUILD_EXIT_CODE_FILE).map(PathBuf::from),
            server_host: get(CI_SERVER_HOST),
            runner_id: get(CI_RUNNER_ID),
        }
    }

    /// The job VM's name: `gitlab-<job id>`, and `_r<hash>` of the GitLab instance and the
    /// runner when the runner says which they are. Job IDs are unique per instance only: two
    /// runners of two instances on one host must not take each other's VMs.
    pub fn vm_name(&self) -> anyhow::Result<String> {
        match &self.job_id {
            Some(id) => Ok(vm_name(id) + &self.runner_suffix()),
            None => anyhow::bail!(
                "{CI_JOB_ID} is not set; this program must be run by gitlab-runner's custom executor \
                 (to try it by hand, export {CI_JOB_ID}=test1 and {CI_JOB_IMAGE}=<image>)"
            ),
        }
    }
}

impl JobEnv {
    /// `_r` and 8 hex digits of the SHA-256 of instance host and runner ID, or nothing when
    /// neither is known. Escaped IDs never contain `_r`, so names stay distinct.
    fn runner_suffix(&self) -> String {
        if self.server_host.is_none() && self.runner_id.is_none() {
            return String::new();
        }
        use sha2::Digest as _;
        let identity = format!(
            "{}\n{}",
            self.server_host.as_deref().unwrap_or(""),
            self.runner_id.as_deref().unwrap_or("")
        );
        let hash = sha2::Sha256::digest(identity.as_bytes());
        format!("_r{}", &hex::encode(hash)[..8])
    }
}

/// `gitlab-<id>`, with every character but ASCII letters, digits and `-` escaped (`_` as `__`,
/// others as `_<hex>` per UTF-8 byte), so the name is safe for libvirt and as a directory name,
/// and different IDs never give the same name. GitLab's numeric IDs stay as they are.
pub fn vm_name(job_id: &str) -> String {
    let mut escaped = String::with_capacity(job_id.len());
    for byte in job_id.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => escaped.push(char::from(byte)),
            b'_' => escaped.push_str("__"),
            other => escaped.push_str(&format!("_{other:02x}")),
        }
        if escaped.len() >= MAX_ID_LEN {
            break;
        }
    }
    format!("gitlab-{escaped}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::vars;

    #[test]
    fn jobs_of_different_instances_or_runners_get_different_names() {
        let job = |host: Option<&str>, runner: Option<&str>| JobEnv {
            job_id: Some("42".into()),
            server_host: host.map(Into::into),
            runner_id: runner.map(Into::into),
            ..JobEnv::default()
        };
        let by_hand = job(None, None).vm_name().unwrap();
        assert_eq!(by_hand, "gitlab-42");
        let a = job(Some("gitlab.a.example"), Some("7")).vm_name().unwrap();
        let b = job(Some("gitlab.b.example"), Some("7")).vm_name().unwrap();
        let c = job(Some("gitlab.a.example"), Some("8")).vm_name().unwrap();
        assert!(
            a.starts_with("gitlab-42_r") && a.len() == "gitlab-42_r".len() + 8,
            "{a}"
        );
        assert!(a != b && a != c && b != c && a != by_hand);
        assert_eq!(
            a,
            job(Some("gitlab.a.example"), Some("7")).vm_name().unwrap()
        );
    }

    #[test]
    fn numeric_ids_are_kept() {
        assert_eq!(vm_name("123456"), "gitlab-123456");
        assert_eq!(vm_name("test-1"), "gitlab-test-1");
    }

    #[test]
    fn unsafe_characters_are_escaped_injectively() {
        assert_eq!(vm_name("../x"), "gitlab-_2e_2e_2fx");
        assert_eq!(vm_name("a b"), "gitlab-a_20b");
        assert_eq!(vm_name("a_b"), "gitlab-a__b");
        assert_ne!(vm_name("a_20b"), vm_name("a b"));
        assert_eq!(vm_name("ü"), "gitlab-_c3_bc");
        for id in ["a/b", "$(rm -rf /)", "x\ny", "'", "ü"] {
            let name = vm_name(id);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn long_ids_are_cut() {
        let name = vm_name(&"9".repeat(500));
        assert!(
            name.len() <= "gitlab-".len() + MAX_ID_LEN + 2,
            "{}",
            name.len()
        );
    }

    #[test]
    fn reads_the_prefixed_variables_only() {
        let job = JobEnv::from_env(vars(&[
            ("CUSTOM_ENV_CI_JOB_ID", "42"),
            ("CI_JOB_IMAGE", "ignored"),
            ("CUSTOM_ENV_CI_REGISTRY", "registry.example:5050"),
            ("BUILD_EXIT_CODE_FILE", "/tmp/j/build_exit_code"),
        ]));
        assert_eq!(job.vm_name().unwrap(), "gitlab-42");
        assert_eq!(job.image, None);
        assert_eq!(job.registry.as_deref(), Some("registry.example:5050"));
        assert_eq!(
            job.build_exit_code_file,
            Some(PathBuf::from("/tmp/j/build_exit_code"))
        );
    }

    #[test]
    fn a_missing_job_id_says_how_to_run() {
        let job = JobEnv::from_env(vars(&[("CUSTOM_ENV_CI_JOB_ID", " ")]));
        let err = job.vm_name().unwrap_err().to_string();
        assert!(err.contains("CUSTOM_ENV_CI_JOB_ID is not set"), "{err}");
    }
}
