//! How a stage ends, in gitlab-runner's terms: success, a failure of the job's own code
//! (`BUILD_FAILURE_EXIT_CODE`, with the script's real status in `BUILD_EXIT_CODE_FILE`), or a
//! failure of the infrastructure (`SYSTEM_FAILURE_EXIT_CODE`).
//!
//! Unlike sardinecake 0.4.2, no other exit status ever escapes (a failing fetch used to exit
//! with skopeo's status, W14), and a script's own `exit 2` is never mistaken for a system
//! failure.

use std::path::Path;

use crate::env;

/// The runner's default for [`env::BUILD_FAILURE_EXIT_CODE`].
pub const DEFAULT_BUILD_FAILURE: u8 = 1;
/// The runner's default for [`env::SYSTEM_FAILURE_EXIT_CODE`].
pub const DEFAULT_SYSTEM_FAILURE: u8 = 2;

/// How a stage that did not fail the infrastructure ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// The job's code failed (or was cancelled): exit with the build failure code.
    BuildFailure,
}

/// The exit statuses gitlab-runner asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitCodes {
    /// The job's own code failed.
    pub build_failure: u8,
    /// The infrastructure failed.
    pub system_failure: u8,
}

impl Default for ExitCodes {
    fn default() -> Self {
        ExitCodes {
            build_failure: DEFAULT_BUILD_FAILURE,
            system_failure: DEFAULT_SYSTEM_FAILURE,
        }
    }
}

impl ExitCodes {
    /// Reads both codes from the environment; a missing value is the runner's default, an
    /// unusable one (not a number from 0 to 255) too, with a warning in the returned list.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> (ExitCodes, Vec<String>) {
        let mut warnings = Vec::new();
        let mut read = |name: &str, default: u8| match var(name) {
            None => default,
            Some(text) => text.trim().parse::<u8>().unwrap_or_else(|_| {
                warnings.push(format!(
                    "{name}={text:?} is not an exit status from 0 to 255; using {default}"
                ));
                default
            }),
        };
        let codes = ExitCodes {
            build_failure: read(env::BUILD_FAILURE_EXIT_CODE, DEFAULT_BUILD_FAILURE),
            system_failure: read(env::SYSTEM_FAILURE_EXIT_CODE, DEFAULT_SYSTEM_FAILURE),
        };
        (codes, warnings)
    }

    /// The process exit status for an outcome.
    pub fn status(&self, outcome: Outcome) -> u8 {
        match outcome {
            Outcome::Success => 0,
            Outcome::BuildFailure => self.build_failure,
        }
    }
}

/// Writes a script's exit status as `"<code>\n"` to the runner's `BUILD_EXIT_CODE_FILE`, which
/// makes `allow_failure: exit_codes` work.
pub fn write_build_exit_code(path: &Path, code: i32) -> std::io::Result<()> {
    fs_err::write(path, format!("{code}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::vars;

    #[test]
    fn defaults_when_unset() {
        let (codes, warnings) = ExitCodes::from_env(vars(&[]));
        assert_eq!(
            codes,
            ExitCodes {
                build_failure: 1,
                system_failure: 2
            }
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn values_from_the_runner() {
        let (codes, warnings) = ExitCodes::from_env(vars(&[
            ("BUILD_FAILURE_EXIT_CODE", "5"),
            ("SYSTEM_FAILURE_EXIT_CODE", " 7 "),
        ]));
        assert_eq!(
            codes,
            ExitCodes {
                build_failure: 5,
                system_failure: 7
            }
        );
        assert!(warnings.is_empty());
        assert_eq!(codes.status(Outcome::BuildFailure), 5);
        assert_eq!(codes.status(Outcome::Success), 0);
    }

    #[test]
    fn unusable_values_fall_back_with_a_warning() {
        let (codes, warnings) = ExitCodes::from_env(vars(&[
            ("BUILD_FAILURE_EXIT_CODE", "one"),
            ("SYSTEM_FAILURE_EXIT_CODE", "300"),
        ]));
        assert_eq!(codes, ExitCodes::default());
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].contains("BUILD_FAILURE_EXIT_CODE=\"one\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn exit_code_file_holds_the_code_and_a_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build_exit_code");
        write_build_exit_code(&path, 3).unwrap();
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "3\n");
        write_build_exit_code(&path, 255).unwrap();
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "255\n");
    }

    #[test]
    fn exit_code_file_in_a_missing_directory_is_an_error_naming_it() {
        let err =
            write_build_exit_code(Path::new("/nonexistent-dir/build_exit_code"), 3).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/build_exit_code"),
            "{err}"
        );
    }
}
