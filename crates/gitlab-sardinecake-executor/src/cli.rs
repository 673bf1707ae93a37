//! The command line: the four stages gitlab-runner calls, and the options every stage shares.
//!
//! Every option is defined once, here. Options are global, so they may come before or after the
//! stage name (`--ocidir X prepare` and `prepare --ocidir X` are the same); sardinecake 0.4.2
//! accepted the store and timeout options only after `prepare`, which still works.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// GitLab Runner custom executor running every job in a throwaway copy-on-write clone of a
/// libvirt VM image (see docs/gitlab-runner.md).
#[derive(Debug, Parser)]
#[command(name = "gitlab-sardinecake-executor", version, about, long_about = None)]
pub struct Cli {
    /// Options shared by all stages.
    #[command(flatten)]
    pub options: SharedOptions,
    /// The stage gitlab-runner is in.
    #[command(subcommand)]
    pub stage: Stage,
}

/// The stages of gitlab-runner's custom executor protocol.
#[derive(Debug, Subcommand)]
pub enum Stage {
    /// Print the driver's JSON configuration (builds and cache directories, driver version).
    Config,
    /// Fetch the job's image, start a throwaway clone of it and wait until it accepts SSH logins.
    Prepare,
    /// Run one script of the job (a file on this host) inside the job's VM.
    Run {
        /// The script gitlab-runner generated.
        script: PathBuf,
        /// The stage's name (`prepare_script`, `get_sources`, `build_script`, `step_*`, ...);
        /// any name is accepted.
        stage: String,
    },
    /// Destroy the job's VM and whatever prepare left behind; succeeds when there is nothing.
    Cleanup,
}

/// Options of every stage; each overrides the configuration file (see docs/gitlab-runner.md).
#[derive(Debug, Default, Clone, Args)]
pub struct SharedOptions {
    /// libvirt URI (default: libvirt's own default, e.g. `LIBVIRT_DEFAULT_URI`).
    #[arg(long, global = true, value_name = "URI")]
    pub connect: Option<String>,
    /// Log more (repeat for even more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log less (repeat for even less).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Resolve the settings, log them, and stop without doing anything.
    #[arg(long, global = true)]
    pub no_run: bool,
    /// SSH user in the guest (default: the image's first user, else `vagrant`).
    #[arg(short, long, global = true, value_name = "USER")]
    pub username: Option<String>,
    /// SSH password in the guest (default: the image's first user's, else `vagrant`). Visible
    /// to every local user in the process list: prefer --password-file or the config file.
    #[arg(short, long, global = true, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// A file whose first line is the SSH password in the guest.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "password")]
    pub password_file: Option<PathBuf>,
    /// SSH private key file, or a directory whose `id_*` private keys are all tried.
    #[arg(long, global = true, value_name = "PATH")]
    pub identity_file: Option<PathBuf>,
    /// How long prepare waits for the guest's address and SSH login (`120`, `90s`, `5m`).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// A script run in the guest at the end of prepare; its failure fails the job.
    #[arg(long, global = true, value_name = "FILE")]
    pub prepare_script: Option<PathBuf>,
    /// Directory for the job VMs' overlay disks.
    #[arg(long, global = true, value_name = "DIR")]
    pub clonedir: Option<PathBuf>,
    /// Directory for the base VMs imported from images.
    #[arg(long, global = true, value_name = "DIR")]
    pub vmdir: Option<PathBuf>,
    /// The local OCI image store.
    #[arg(long, global = true, value_name = "DIR")]
    pub ocidir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    sardine_config::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_go_before_or_after_the_stage() {
        let cli =
            Cli::try_parse_from(["x", "--ocidir", "/o", "prepare", "--timeout", "90s"]).unwrap();
        assert_eq!(cli.options.ocidir, Some(PathBuf::from("/o")));
        assert_eq!(cli.options.timeout, Some(Duration::from_secs(90)));
        assert!(matches!(cli.stage, Stage::Prepare));
    }

    #[test]
    fn run_takes_any_stage_name() {
        let cli = Cli::try_parse_from(["x", "run", "/tmp/s/script", "step_release", "-u", "root"])
            .unwrap();
        let Stage::Run { script, stage } = cli.stage else {
            panic!("not run")
        };
        assert_eq!(script, PathBuf::from("/tmp/s/script"));
        assert_eq!(stage, "step_release");
        assert_eq!(cli.options.username.as_deref(), Some("root"));
    }

    #[test]
    fn run_needs_script_and_stage() {
        assert!(Cli::try_parse_from(["x", "run", "/tmp/s/script"]).is_err());
    }
}
