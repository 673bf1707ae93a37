//! `sarde completions` and `sarde man`: shell completion scripts and manual pages, generated
//! from the clap definitions in [`crate::cli`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Command;

use crate::cli::{CompletionsArgs, ManArgs};

/// Prints the completion script for a shell to `out`.
pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut command = crate::settings::command();
    // Generated into memory first: clap_complete panics on write errors such as a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "sarde", &mut script);
    out.write_all(&script)
        .context("cannot write the completion script")?;
    out.flush().context("cannot write the completion script")
}

/// Prints the manual page of sarde to `out`, or with `--all` writes the pages of sarde and of
/// every subcommand into a directory and prints their paths.
pub fn man(args: &ManArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let command = crate::settings::command();
    if !args.all {
        let page = render(&command)?;
        out.write_all(&page)
            .context("cannot write the manual page")?;
        return out.flush().context("cannot write the manual page");
    }
    for path in write_pages(&command, &args.out_dir)? {
        writeln!(out, "{}", path.display()).context("cannot write the list of manual pages")?;
    }
    Ok(())
}

/// Renders one manual page (roff).
fn render(command: &Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .with_context(|| format!("cannot render the manual page of {}", command.get_name()))?;
    Ok(page)
}

/// Writes `<name>.1` for `command` and every visible subcommand (except `help`) into `dir`.
fn write_pages(command: &Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let name = command.get_display_name().unwrap_or(command.get_name());
    let path = dir.join(format!("{name}.1"));
    fs_err::write(&path, render(command)?)?;
    written.push(path);
    for subcommand in command.get_subcommands() {
        if subcommand.is_hide_set() || subcommand.get_name() == "help" {
            continue;
        }
        written.extend(write_pages(subcommand, dir)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{CompletionsArgs, ManArgs};

    #[test]
    fn all_pages_are_written() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let args = ManArgs {
            all: true,
            out_dir: dir.path().to_owned(),
        };
        let mut listing = Vec::new();
        man(&args, &mut listing)?;
        let listing = String::from_utf8(listing)?;
        assert!(listing.lines().any(|line| line.ends_with("/sarde.1")));
        let export = fs_err::read_to_string(dir.path().join("sarde-export.1"))?;
        assert!(
            export.starts_with(".ie") || export.starts_with(".TH"),
            "{}",
            &export[..40]
        );
        assert!(export.contains("chunksize"));
        assert!(!dir.path().join("sarde-help.1").exists());
        Ok(())
    }

    #[test]
    fn completions_mention_subcommands() -> anyhow::Result<()> {
        let mut script = Vec::new();
        completions(
            &CompletionsArgs {
                shell: clap_complete::Shell::Fish,
            },
            &mut script,
        )?;
        let script = String::from_utf8(script)?;
        assert!(script.contains("getconfig") && script.contains("chunksize"));
        Ok(())
    }
}
