//! Host programs a build runs (mmdebstrap, mkfs.ext4, qemu-img, unshare, tar): started with
//! their output kept (or shown, with `--verbose`), a missing program reported with the package
//! that has it, a failure with the end of its output.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::error::BuildError;

/// Where a step runs: the image it is for, and whether its output is shown.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The image being built.
    pub image: &'a str,
    /// Show every program's output on stderr (else keep it for the error message).
    pub verbose: bool,
}

/// How many lines of a failed program's output an error shows.
const TAIL_LINES: usize = 25;

/// The Debian package of a program the build uses.
fn package_of(program: &str) -> &'static str {
    match program {
        "mmdebstrap" => "mmdebstrap",
        "mkfs.ext4" | "resize2fs" | "debugfs" => "e2fsprogs",
        "qemu-img" => "qemu-utils",
        "qemu-storage-daemon" => "qemu-system-common",
        "unshare" | "mount" | "umount" => "util-linux",
        "tar" => "tar",
        "openssl" => "openssl",
        _ => "the one that has it",
    }
}

impl StepContext<'_> {
    /// Runs `command` as the step `step` (`mmdebstrap`, `action 2 (run-command)`), with
    /// `stdin`, and fails with its output's end unless it succeeds. Logs the step's duration.
    pub fn run(
        &self,
        step: &str,
        command: &mut Command,
        stdin: Option<File>,
    ) -> Result<(), BuildError> {
        let started = Instant::now();
        let program = command.get_program().to_string_lossy().into_owned();
        let log = if self.verbose {
            None
        } else {
            Some(tempfile_for_output()?)
        };
        match &log {
            Some(file) => {
                command.stdout(clone(file)?).stderr(clone(file)?);
            }
            None => {
                command.stdout(std::io::stderr()).stderr(std::io::stderr());
            }
        }
        command.stdin(stdin.map_or_else(Stdio::null, Stdio::from));
        tracing::debug!("image {}: {step}: {command:?}", self.image);
        let status = command
            .status()
            .map_err(|e| self.spawn_error(step, &program, e))?;
        if !status.success() {
            return Err(BuildError::Step {
                image: self.image.to_owned(),
                step: step.to_owned(),
                what: format!("`{program}` {status}"),
                output: log.map(tail).unwrap_or_default(),
            });
        }
        tracing::info!(
            "image {}: {step}: done in {:.1?}",
            self.image,
            started.elapsed()
        );
        Ok(())
    }

    /// Runs `command` with `input` on its stdin and returns its stdout; fails like [`Self::run`].
    pub fn output(
        &self,
        step: &str,
        command: &mut Command,
        input: &[u8],
    ) -> Result<Vec<u8>, BuildError> {
        use std::io::Write as _;
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(step, &program, e))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input);
        }
        let output = child
            .wait_with_output()
            .map_err(|e| self.failure(step, format!("`{program}`: {e}")))?;
        if !output.status.success() {
            return Err(BuildError::Step {
                image: self.image.to_owned(),
                step: step.to_owned(),
                what: format!("`{program}` {}", output.status),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(output.stdout)
    }

    /// The error of a program that could not be started.
    fn spawn_error(&self, step: &str, program: &str, error: std::io::Error) -> BuildError {
        if error.kind() == std::io::ErrorKind::NotFound {
            BuildError::MissingProgram {
                program: program.to_owned(),
                package: package_of(program).to_owned(),
                image: self.image.to_owned(),
                purpose: step.to_owned(),
            }
        } else {
            self.failure(step, format!("cannot start `{program}`: {error}"))
        }
    }

    /// A step's failure that no program reported.
    pub fn failure(&self, step: &str, what: impl Into<String>) -> BuildError {
        BuildError::Step {
            image: self.image.to_owned(),
            step: step.to_owned(),
            what: what.into(),
            output: String::new(),
        }
    }
}

/// An unnamed temporary file for a program's output.
fn tempfile_for_output() -> Result<File, BuildError> {
    tempfile::tempfile().map_err(BuildError::io(
        "creating a temporary file in",
        std::env::temp_dir(),
    ))
}

fn clone(file: &File) -> Result<File, BuildError> {
    file.try_clone().map_err(BuildError::io(
        "duplicating the output file in",
        std::env::temp_dir(),
    ))
}

/// The last [`TAIL_LINES`] lines of what a program wrote.
fn tail(mut file: File) -> String {
    let mut text = String::new();
    if file.seek(SeekFrom::Start(0)).is_err() {
        return text;
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    text.push_str(&String::from_utf8_lossy(&bytes));
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}
