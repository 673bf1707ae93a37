//! `sarde`: share libvirt virtual machines through OCI container registries.
//!
//! The binary (`main.rs`) only calls [`run`] and [`report`]. [`run`] parses the command line,
//! reads the configuration ([`settings`]), sets up logging ([`logging`]) and runs the
//! subcommand ([`commands`]); [`report`] prints errors as `error: …` (with the chain of causes)
//! and `hint: …` lines and picks the exit status from [`exit_code`].

pub mod cli;
pub mod commands;
pub mod env;
pub mod exit_code;
mod generate;
pub mod logging;
mod progress;
pub mod settings;
mod terminal;

use std::io::Write;
use std::process::ExitCode;

use settings::SettingsError;

/// Runs sarde with the process's arguments.
pub fn run() -> anyhow::Result<ExitCode> {
    let settings = match settings::load(std::env::args_os().collect()) {
        Ok(settings) => settings,
        Err(SettingsError::CommandLine(error)) => return print_clap_error(&error),
        Err(error @ SettingsError::Combined(_)) => return print_combined_error(&error),
        Err(error) => {
            return Err(exit_code::Failure::new(exit_code::USAGE, error)
                .with_hint(format!(
                    "fix the configuration file, or choose others with {}=FILE:FILE (empty: none)",
                    env::SARDE_CONF_FILES
                ))
                .into());
        }
    };
    logging::init(settings.verbosity());
    settings.log();
    if settings.cli.global.no_run {
        return Ok(ExitCode::SUCCESS);
    }
    commands::dispatch(&settings)
}

/// Prints a command-line error (or the help or version clap produced) the way clap does, with a
/// hint when an unknown subcommand is another tool's name for one of sarde's.
fn print_clap_error(error: &clap::Error) -> anyhow::Result<ExitCode> {
    error.print()?;
    if let Some(hint) = foreign_verb_hint(error) {
        eprintln!("hint: {hint}");
    }
    Ok(if error.use_stderr() {
        exit_code::to_exit_code(exit_code::USAGE)
    } else {
        ExitCode::SUCCESS
    })
}

/// What docker, podman and tart users type, and sarde's command for it.
const FOREIGN_VERBS: [(&str, &str); 5] = [
    ("images", "sarde list"),
    ("ls", "sarde list"),
    ("ps", "sarde list --vms"),
    ("rmi", "sarde rm --image"),
    ("create", "sarde clone IMAGE NAME"),
];

/// The hint for an unknown subcommand that another tool has, e.g. `images` → `sarde list`.
fn foreign_verb_hint(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    if error.kind() != clap::error::ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = error.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let (_, ours) = FOREIGN_VERBS.iter().find(|(verb, _)| verb == word)?;
    Some(format!("sarde's command for `{word}` is `{ours}`"))
}

/// Prints an error of the command line combined with configuration values.
fn print_combined_error(error: &SettingsError) -> anyhow::Result<ExitCode> {
    eprintln!("error: {error}");
    if let SettingsError::Combined(clap_error) = error {
        clap_error.print()?;
    }
    eprintln!("hint: run with --no-run -v to see which configuration values were used");
    Ok(exit_code::to_exit_code(exit_code::USAGE))
}

/// Prints an error with its causes and hint; returns the exit status. A closed stdout (as in
/// `sarde list | head -1`) is not an error.
pub fn report(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    let mut stderr = std::io::stderr().lock();
    // Nothing sensible is left to do if stderr cannot be written to.
    let _ = writeln!(stderr, "error: {error:#}");
    let hint = exit_code::hint_of(error).map(str::to_owned);
    if let Some(hint) = hint.or_else(|| exit_code::library_hint(error)) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    exit_code::to_exit_code(exit_code::code_of(error))
}

/// Whether an error comes from writing to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
