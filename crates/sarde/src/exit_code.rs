//! The exit statuses of sarde, and errors that carry one (with an optional hint for the user).

use std::fmt;
use std::process::ExitCode;

/// Success.
pub const SUCCESS: u8 = 0;
/// Any failure without a more specific status.
pub const GENERAL: u8 = 1;
/// The command line or a configuration file is wrong.
pub const USAGE: u8 = 2;
/// An image, VM or file that was asked for does not exist.
pub const NOT_FOUND: u8 = 3;
/// A registry could not be reached, refused a request or failed.
pub const NETWORK: u8 = 4;
/// Data did not match its digest or size, or an image is malformed.
pub const INTEGRITY: u8 = 5;
/// libvirt refused or failed an operation.
pub const LIBVIRT: u8 = 6;

/// An error with the exit status sarde should end with and, optionally, a hint telling the user
/// what to do (by default the libraries' hint for the error, see [`library_hint`]). Displays as
/// the error it wraps; attach it with [`ResultExt`].
#[derive(Debug)]
pub struct Failure {
    code: u8,
    hint: Option<String>,
    error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl Failure {
    /// Wraps `error` with the exit status `code`.
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        Self {
            code,
            hint: library_hint(&error),
            error: error.into(),
        }
    }

    /// Sets the hint, shown as `hint: …` after the error (instead of the libraries' hint).
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The exit status.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The hint, if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Attaching exit statuses and hints to results.
pub trait ResultExt<T> {
    /// Ends sarde with `code` if this is an error (keeps an existing hint).
    fn exit_code(self, code: u8) -> anyhow::Result<T>;
    /// Shows `hint` after the error, if this is one (keeps an existing exit status, else 1).
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T>;
}

/// `error` as a failure with exit status `code`, showing `hint` after it when there is one.
pub fn failure(code: u8, error: impl Into<anyhow::Error>, hint: Option<String>) -> anyhow::Error {
    let failure = Failure::new(code, error);
    anyhow::Error::new(match hint {
        Some(hint) => failure.with_hint(hint),
        None => failure,
    })
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn exit_code(self, code: u8) -> anyhow::Result<T> {
        self.map_err(|error| {
            let error = error.into();
            let hint = hint_of(&error).map(str::to_owned);
            failure(code, error, hint)
        })
    }

    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|error| {
            let error = error.into();
            let code = code_of(&error);
            anyhow::Error::new(Failure::new(code, error).with_hint(hint))
        })
    }
}

/// The exit status for an error: that of its outermost [`Failure`], else [`GENERAL`].
pub fn code_of(error: &anyhow::Error) -> u8 {
    error
        .downcast_ref::<Failure>()
        .map_or(GENERAL, Failure::code)
}

/// The hint of an error's outermost [`Failure`], if any.
pub fn hint_of(error: &anyhow::Error) -> Option<&str> {
    error.downcast_ref::<Failure>().and_then(Failure::hint)
}

/// The hint of the first error along `error`'s chain of causes for which a library has one.
pub fn library_hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        sardine_vm::hint_of(cause).or_else(|| {
            let ssh = cause.downcast_ref::<sardine_ssh::SshError>()?;
            ssh.hint().map(str::to_owned)
        })
    })
}

/// Converts a status to an [`ExitCode`].
pub fn to_exit_code(code: u8) -> ExitCode {
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn failing() -> anyhow::Result<()> {
        Err(std::io::Error::other("disk on fire")).context("reading the disk")
    }

    #[test]
    fn plain_errors_are_general_failures() {
        let error = failing()
            .err()
            .map(|e| (code_of(&e), hint_of(&e).map(str::to_owned)));
        assert_eq!(error, Some((GENERAL, None)));
    }

    #[test]
    fn codes_and_hints_survive_context_and_keep_the_chain() {
        let error = failing()
            .exit_code(NOT_FOUND)
            .hint("run `sarde list`")
            .context("importing x")
            .err();
        let Some(error) = error else {
            panic!("no error");
        };
        assert_eq!(code_of(&error), NOT_FOUND);
        assert_eq!(hint_of(&error), Some("run `sarde list`"));
        assert_eq!(
            format!("{error:#}"),
            "importing x: reading the disk: disk on fire"
        );
    }
}
