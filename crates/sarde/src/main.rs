//! The `sarde` binary: everything happens in the library crate, see [`sarde::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    match sarde::run() {
        Ok(code) => code,
        Err(error) => sarde::report(&error),
    }
}
