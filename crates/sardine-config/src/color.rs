//! Whether log messages get colours: the conventions of <https://no-color.org> and
//! <https://bixense.com/clicolors/>, shared by sarde and the GitLab executor.

use std::ffi::OsString;
use std::io::IsTerminal;

use crate::files::env;

/// Whether to colour what goes to stderr: never with a non-empty `NO_COLOR`; always with a
/// non-empty `CLICOLOR_FORCE` (e.g. for GitLab's job log, which shows colours but is no
/// terminal); otherwise only on a terminal.
pub fn stderr_color() -> bool {
    decide_color(
        std::env::var_os(env::NO_COLOR),
        std::env::var_os(env::CLICOLOR_FORCE),
        std::io::stderr().is_terminal(),
    )
}

/// [`stderr_color`] with explicit inputs.
fn decide_color(no_color: Option<OsString>, force: Option<OsString>, is_terminal: bool) -> bool {
    let set = |value: Option<OsString>| value.is_some_and(|v| !v.is_empty());
    if set(no_color) {
        return false;
    }
    set(force) || is_terminal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_on_terminals_unless_no_color_and_when_forced() {
        let some = |s: &str| Some(OsString::from(s));
        assert!(decide_color(None, None, true));
        assert!(!decide_color(None, None, false));
        assert!(!decide_color(some("1"), None, true));
        assert!(
            decide_color(some(""), None, true),
            "an empty NO_COLOR does not count"
        );
        assert!(decide_color(None, some("1"), false));
        assert!(!decide_color(some("1"), some("1"), true), "NO_COLOR wins");
        assert!(!decide_color(None, some(""), false));
    }
}
