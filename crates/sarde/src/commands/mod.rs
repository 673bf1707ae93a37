//! The subcommands of sarde: [`dispatch`] runs the one the command line chose.
//!
//! Each subcommand gets its own module here; the ones without one yet fail with a clear
//! "not implemented yet" error.

use std::process::ExitCode;

use crate::cli::Command;
use crate::exit_code::{self, ResultExt};
use crate::settings::Settings;

/// Runs the subcommand of `settings` and returns the exit status.
pub fn dispatch(settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match &settings.cli.command {
        Command::Completions(args) => crate::generate::completions(args, &mut stdout)?,
        Command::Man(args) => crate::generate::man(args, &mut stdout)?,
        Command::Login(_)
        | Command::Logout(_)
        | Command::Fetch(_)
        | Command::Push(_)
        | Command::Pull(_)
        | Command::Export(_)
        | Command::Import(_)
        | Command::List(_)
        | Command::Getconfig(_)
        | Command::Clone(_)
        | Command::Rm(_)
        | Command::Prune(_)
        | Command::Ip(_)
        | Command::Ssh(_) => return not_implemented(&settings.subcommand),
    }
    Ok(ExitCode::SUCCESS)
}

/// The error of a subcommand that does not exist yet.
fn not_implemented(name: &str) -> anyhow::Result<ExitCode> {
    Err(anyhow::anyhow!("sarde {name}: not implemented yet"))
        .exit_code(exit_code::GENERAL)
        .hint("this build of sarde is incomplete; see the project's issue tracker")
}
