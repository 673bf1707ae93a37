//! `gitlab-sardinecake-executor`: a GitLab Runner custom executor that runs every job in a
//! throwaway copy-on-write clone of a libvirt VM image (see docs/gitlab-runner.md).
//!
//! [`main_with`] does what the binary does: parse the command line, read the environment and
//! the configuration files, resolve the settings ([`settings`]), run the stage ([`stages`]) and
//! map the result to the exit statuses gitlab-runner expects ([`exit`]).

pub mod cli;
pub mod env;
pub mod exit;
mod fetch;
mod guest;
mod identity;
mod logging;
pub mod settings;
pub mod stages;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, Stage};
use crate::env::JobEnv;
use crate::exit::ExitCodes;
use crate::stages::StageContext;

/// Runs the executor with `args` (including the program name) and the process environment.
pub fn main_with(args: Vec<OsString>) -> ExitCode {
    let (codes, code_warnings) = ExitCodes::from_env(|name| std::env::var(name).ok());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(codes.system_failure)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logging::init(cli.options.verbose, cli.options.quiet);
    for warning in code_warnings {
        tracing::warn!("{warning}");
    }
    match run(cli) {
        Ok(outcome) => ExitCode::from(codes.status(outcome)),
        Err(error) => {
            report(&error);
            ExitCode::from(codes.system_failure)
        }
    }
}

/// Resolves the settings and runs the stage.
fn run(cli: Cli) -> anyhow::Result<exit::Outcome> {
    let job = JobEnv::from_env(|name| std::env::var(name).ok());
    let files = sardine_config::executor_config_files();
    let (config, read) = sardine_config::Config::load(&files)
        .context("cannot read the executor's configuration; fix the file, or choose others with GITLAB_SARDINECAKE_EXECUTOR_CONF_FILES")?;
    if read.is_empty() {
        tracing::debug!(
            "no configuration file found (looked for {files:?}); using the built-in defaults"
        );
    }
    let settings = settings::resolve(&cli.options, &config, job.image.as_deref())?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    tracing::debug!("settings:\n{}", settings.summary());
    if cli.options.no_run {
        tracing::info!("--no-run: resolved settings:\n{}", settings.summary());
        return Ok(exit::Outcome::Success);
    }
    let ctx = StageContext { settings, job };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match &cli.stage {
            Stage::Config => stages::config::config(&ctx).await,
            Stage::Prepare => stages::prepare::prepare(&ctx).await,
            Stage::Run { script, stage } => stages::run::run(&ctx, script, stage).await,
            Stage::Cleanup => stages::cleanup::cleanup(&ctx).await,
        }
    })
}

/// A failure with the executor's own hint, which replaces the libraries' (attach it with
/// `anyhow::Context::context`).
#[derive(Debug)]
pub(crate) struct Hinted {
    /// What failed.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Logs an infrastructure failure as sarde prints one: the chain of causes on one line, then
/// the executor's hint, else that of the first cause that a library has one for.
fn report(error: &anyhow::Error) {
    let own = error.downcast_ref::<Hinted>().map(|h| h.hint.clone());
    let hint = own.or_else(|| {
        error.chain().find_map(|cause| {
            sardine_vm::hint_of(cause).or_else(|| {
                let ssh = cause.downcast_ref::<sardine_ssh::SshError>()?;
                ssh.hint().map(str::to_owned)
            })
        })
    });
    match hint {
        Some(hint) => tracing::error!("{error:#}\nhint: {hint}"),
        None => tracing::error!("{error:#}"),
    }
}

#[cfg(test)]
mod test_support {
    //! Helpers of the unit tests.
    use std::collections::HashMap;

    /// An environment lookup over fixed pairs.
    pub(crate) fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }
}
