//! Logging to stderr, which gitlab-runner shows in the job log (prepare, run) or in its own log
//! (config, cleanup); and timing of the steps prepare takes.
//!
//! Levels: info by default, `-v` debug, `-vv` trace (also for the libraries below ours), `-q`
//! warnings only, `-qq` errors only. Colours on a terminal, or with `CLICOLOR_FORCE=1` (GitLab's
//! job log shows them); never with `NO_COLOR`.

use std::time::Instant;

use tracing_subscriber::EnvFilter;

/// Sets up the global subscriber; call once, first thing.
pub fn init(verbose: u8, quiet: u8) {
    let level = match i16::from(verbose) - i16::from(quiet) {
        ..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let others = if verbose >= 2 { level } else { "warn" };
    let filter = EnvFilter::new(format!(
        "{others},gitlab_sardinecake_executor={level},sardine_config={level},sardine_oci={level},\
         sardine_vm={level},sardine_libvirt={level},sardine_ssh={level},sardine_disk={level}"
    ));
    let ansi = sardine_config::stderr_color();
    // A second initialisation (tests calling into the library) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(ansi)
        .try_init();
}

/// A step of a stage whose duration is logged when it ends.
pub struct Step {
    what: String,
    start: Instant,
}

impl Step {
    /// Logs that `what` starts.
    pub fn start(what: impl Into<String>) -> Step {
        let what = what.into();
        tracing::info!("{what}...");
        Step {
            what,
            start: Instant::now(),
        }
    }

    /// Logs that the step is done, with how long it took.
    pub fn done(self) {
        tracing::info!(
            "{} done in {:.1} s",
            self.what,
            self.start.elapsed().as_secs_f64()
        );
    }

    /// Logs that the step is done, with a detail and how long it took.
    pub fn done_with(self, detail: &str) {
        tracing::info!(
            "{} done in {:.1} s: {detail}",
            self.what,
            self.start.elapsed().as_secs_f64()
        );
    }
}
