//! `sarde login`, `logout`, `fetch`, `push` and `pull`.

use crate::cli::{FetchArgs, LoginArgs, LogoutArgs, PullArgs, PushArgs};
use crate::exit_code::{self, ResultExt};
use crate::settings::Settings;

fn unavailable(name: &str) -> anyhow::Result<()> {
    Err(anyhow::anyhow!("sarde {name}: being written")).exit_code(exit_code::GENERAL)
}

/// `sarde login`.
pub fn login(_settings: &Settings, _args: &LoginArgs) -> anyhow::Result<()> {
    unavailable("login")
}

/// `sarde logout`.
pub fn logout(_settings: &Settings, _args: &LogoutArgs) -> anyhow::Result<()> {
    unavailable("logout")
}

/// `sarde fetch`.
pub fn fetch(_settings: &Settings, _args: &FetchArgs) -> anyhow::Result<()> {
    unavailable("fetch")
}

/// `sarde push`.
pub fn push(_settings: &Settings, _args: &PushArgs) -> anyhow::Result<()> {
    unavailable("push")
}

/// `sarde pull`.
pub fn pull(_settings: &Settings, _args: &PullArgs) -> anyhow::Result<()> {
    unavailable("pull")
}
