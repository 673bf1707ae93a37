//! Every environment variable sarde reads, in one place, with the text `sarde --help` shows
//! about them.
//!
//! Some are read by the programs and libraries sarde uses rather than by sarde itself (libvirt
//! reads `LIBVIRT_DEFAULT_URI`); they are listed because they change what sarde does.

pub use sardine_config::env::{
    CLICOLOR_FORCE, HOME, NO_COLOR, SARDE_CONF_FILES, XDG_CONFIG_HOME, XDG_DATA_HOME,
};

/// Registry user name for the registry SARDE_REGISTRY names (fetch, push, pull; also the
/// default of `sarde login -u`); with SARDE_REGISTRY_PASSWORD it beats stored credentials.
pub const SARDE_REGISTRY_USERNAME: &str = "SARDE_REGISTRY_USERNAME";

/// The one registry SARDE_REGISTRY_USERNAME/PASSWORD are for.
pub const SARDE_REGISTRY: &str = sardine_vm::credentials::ENV_REGISTRY;

/// Registry password or token for the registry SARDE_REGISTRY names (with
/// SARDE_REGISTRY_USERNAME), and the default of `sarde login -p`. Safer than -p, which other
/// users can see in the process list.
pub const SARDE_REGISTRY_PASSWORD: &str = "SARDE_REGISTRY_PASSWORD";

/// The registry credentials file (containers-auth.json format, shared with podman and skopeo).
pub const REGISTRY_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";

/// Directory of per-session runtime files, where the default credentials file lives.
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";

/// Read by libvirt, not by sarde: the connection URI used when --connect is not given.
pub const LIBVIRT_DEFAULT_URI: &str = "LIBVIRT_DEFAULT_URI";

/// Every variable with a one-line description, for the help text.
const VARIABLES: [(&str, &str); 13] = [
    (
        SARDE_CONF_FILES,
        "config files instead of the default ones (colon-separated; empty: none)",
    ),
    (
        HOME,
        "home directory: ~ in paths, and ~/.config/sardinecake/sarde.ini",
    ),
    (
        XDG_CONFIG_HOME,
        "if set, $XDG_CONFIG_HOME/sardinecake/sarde.ini is read last",
    ),
    (
        SARDE_REGISTRY,
        "the registry (host[:port]) SARDE_REGISTRY_USERNAME/PASSWORD are for",
    ),
    (
        SARDE_REGISTRY_USERNAME,
        "registry user name for SARDE_REGISTRY",
    ),
    (
        SARDE_REGISTRY_PASSWORD,
        "registry password or token for SARDE_REGISTRY",
    ),
    (
        REGISTRY_AUTH_FILE,
        "registry credentials (default: $XDG_RUNTIME_DIR/containers/auth.json)",
    ),
    (XDG_RUNTIME_DIR, "where the default credentials file lives"),
    (
        XDG_DATA_HOME,
        "non-root default store and VMs: $XDG_DATA_HOME/sardinecake",
    ),
    (NO_COLOR, "if not empty: no colours in log messages"),
    (
        CLICOLOR_FORCE,
        "if not empty: colours also when stderr is no terminal",
    ),
    (
        LIBVIRT_DEFAULT_URI,
        "libvirt's URI without --connect (read by libvirt)",
    ),
    ("RUST_BACKTRACE", "set to 1 to show where a crash happened"),
];

/// The "Environment" section of `sarde --help`.
pub fn help() -> String {
    let width = VARIABLES
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let lines: Vec<String> = VARIABLES
        .iter()
        .map(|(name, text)| format!("  {name:width$}  {text}"))
        .collect();
    format!("Environment:\n{}", lines.join("\n"))
}
