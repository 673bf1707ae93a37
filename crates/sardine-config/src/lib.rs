//! Configuration files of sarde and the GitLab executor: INI sections, sizes, durations, paths.
//!
//! * [`Config`] reads INI files the way Python's `configparser` does (so files written for
//!   sardinecake 0.4.2 keep working), without `%` interpolation and with `-`/`_` in keys treated
//!   alike.
//! * [`sarde_config_files`] and [`executor_config_files`] say which files to read.
//! * [`parse_size`], [`format_size`] and [`parse_duration`] convert values, also for command-line
//!   options.
//! * [`best_matching_section`] picks the executor's per-image section.
//! * [`data_dir`] is where images and VMs go when no directory is configured.

mod color;
mod dirs;
mod duration;
mod error;
mod files;
mod ini;
mod pattern;
mod size;

pub use color::stderr_color;
pub use dirs::{SYSTEM_DATA_DIR, data_dir};
pub use duration::parse_duration;
pub use error::{ConfigError, SyntaxProblem, ValueError};
pub use files::{
    EXECUTOR_SYSTEM_CONFIG, EXECUTOR_USER_CONFIG, SARDE_SYSTEM_CONFIG, SARDE_USER_CONFIG, env,
    executor_config_files, expand_tilde, sarde_config_files,
};
pub use ini::{Config, DEFAULT_SECTION, Entry, normalize_key, parse_bool};
pub use pattern::{best_matching_section, fnmatch};
pub use size::{format_size, parse_size};
