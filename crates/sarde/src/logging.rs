//! Log messages to stderr with `tracing`: the level comes from `-v`/`-q`, colours from
//! [`sardine_config::stderr_color`] (a terminal, no `NO_COLOR`; or `CLICOLOR_FORCE`).
//!
//! Levels: `error` for failures of the operation the user asked for (main prints those), `warn`
//! for problems sarde works around, `info` for progress a user wants to see by default, `debug`
//! for decisions and settings (`-v`), `trace` for protocol details (`-vv`).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The crates whose messages follow the verbosity; others (HTTP, SSH libraries) are limited to
/// warnings unless `-vv` is given.
const OWN_CRATES: [&str; 9] = [
    "sarde",
    "sardine_build",
    "sardine_config",
    "sardine_disk",
    "sardine_libvirt",
    "sardine_oci",
    "sardine_ssh",
    "sardine_vm",
    "gitlab_sardinecake_executor",
];

/// The level for a verbosity (`-v` count minus `-q` count): INFO by default, `-v` DEBUG, `-vv`
/// TRACE, `-q` WARN, `-qq` (or less) ERROR.
pub fn level(verbosity: i16) -> LevelFilter {
    match verbosity {
        i16::MIN..=-2 => LevelFilter::ERROR,
        -1 => LevelFilter::WARN,
        0 => LevelFilter::INFO,
        1 => LevelFilter::DEBUG,
        2..=i16::MAX => LevelFilter::TRACE,
    }
}

/// The level for other crates' messages at a verbosity.
fn foreign_level(verbosity: i16) -> LevelFilter {
    if verbosity >= 2 {
        LevelFilter::DEBUG
    } else {
        level(verbosity).min(LevelFilter::WARN)
    }
}

/// Installs the stderr logger. Calling it twice leaves the first logger in place.
pub fn init(verbosity: i16) {
    let color = sardine_config::stderr_color();
    let filter = OWN_CRATES.iter().fold(
        Targets::new().with_default(foreign_level(verbosity)),
        |targets, name| targets.with_target(*name, level(verbosity)),
    );
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .without_time()
        .with_target(verbosity >= 2);
    // An error only means a logger is already installed (as in tests), which is fine.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_levels() {
        assert_eq!(level(0), LevelFilter::INFO);
        assert_eq!(level(1), LevelFilter::DEBUG);
        assert_eq!(level(2), LevelFilter::TRACE);
        assert_eq!(level(5), LevelFilter::TRACE);
        assert_eq!(level(-1), LevelFilter::WARN);
        assert_eq!(level(-2), LevelFilter::ERROR);
        assert_eq!(level(-9), LevelFilter::ERROR);
    }

    #[test]
    fn other_crates_are_quieter() {
        assert_eq!(foreign_level(0), LevelFilter::WARN);
        assert_eq!(foreign_level(1), LevelFilter::WARN);
        assert_eq!(foreign_level(-2), LevelFilter::ERROR);
        assert_eq!(foreign_level(2), LevelFilter::DEBUG);
    }
}
