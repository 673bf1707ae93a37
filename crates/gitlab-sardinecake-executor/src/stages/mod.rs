//! The four stages of gitlab-runner's custom executor protocol, one module each.
//!
//! Every stage returns `Ok(Outcome)` when the infrastructure worked (the job's own code may
//! still have failed) and `Err` for infrastructure failures, which the caller turns into
//! `SYSTEM_FAILURE_EXIT_CODE`.

pub mod cleanup;
pub mod config;
pub mod prepare;
pub mod run;

use sardine_vm::Store;
use sardine_vm::store::LocalImage;
use sardine_vm::vmconfig::VmConfig;

use crate::env::JobEnv;

/// The owner the executor records in its job VMs' metadata: it never destroys a VM without it
/// (a VM of that name that somebody else made, or another program's).
pub const OWNER: &str = "gitlab-sardinecake-executor";
use crate::settings::Settings;

/// What every stage gets: the resolved settings and the job's environment.
pub struct StageContext {
    /// The settings for the job's image.
    pub settings: Settings,
    /// The job's variables.
    pub job: JobEnv,
}

impl StageContext {
    /// The image's sardine config (SSH credentials) from the local store. A missing image or
    /// config only means there are no defaults from the image: the settings may supply them.
    pub fn image_config(&self) -> Option<VmConfig> {
        let reference = self.settings.reference().ok()?;
        let store = Store::new(&self.settings.ocidir);
        match LocalImage::open(&store, &reference).and_then(|image| image.vmconfig()) {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(
                    "cannot read the sardine config of {reference}, so SSH credentials come from the settings only: {e}"
                );
                None
            }
        }
    }
}
