//! The executor's settings, resolved in one place: command line, then the configuration file's
//! section for the job's image, then `[DEFAULT]`, then the built-in defaults.
//!
//! Differences from sardinecake 0.4.2 (all documented in docs/gitlab-runner.md):
//! * the command line beats the per-image section (0.4.2 let the section win);
//! * `[DEFAULT]` is inherited by the per-image sections, as everywhere else in configparser
//!   files (0.4.2 treated it as a plain section here), except for the `image` key;
//! * paths are `~`-expanded (W24); the best pattern section is the one with the most literal
//!   characters, not the longest name;
//! * new keys: `allowed-images`, `pull-policy`, `memory`, `cpus`, `insecure-registries`,
//!   `ssh-port`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use sardine_config::{Config, DEFAULT_SECTION, Entry};
use sardine_vm::{AddressSource, Reference};

use crate::cli::SharedOptions;

/// Built-in wait for the guest's address and SSH login: long enough for a cold boot under TCG.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Built-in local OCI store.
pub const DEFAULT_OCIDIR: &str = "/var/lib/sardinecake/oci";
/// Built-in directory of imported base VMs.
pub const DEFAULT_VMDIR: &str = "/var/lib/sardinecake/vms";
/// Built-in libvirt network of job VMs: libvirt's own NAT network.
pub const DEFAULT_NETWORK: &str = "default";
/// Built-in nwfilter on every job VM interface: libvirt's anti-spoofing filter.
pub const DEFAULT_NETWORK_FILTER: &str = "clean-traffic";
/// Built-in directory of the job VMs' overlays.
pub const DEFAULT_CLONEDIR: &str = "/var/lib/sardinecake/clones";

/// Every key the executor reads; others get a warning (a typo in `allowed-images` must not go
/// unnoticed). `omit-backingstore` and `verbosity` were accepted and ignored by 0.4.2.
/// Space automatic pruning keeps free on top of what a fetch or an import needs.
const DEFAULT_KEEP_FREE: u64 = 1 << 30;

const KNOWN_KEYS: [&str; 30] = [
    "connect",
    "username",
    "password",
    "password-file",
    "identity-file",
    "timeout",
    "ocidir",
    "vmdir",
    "clonedir",
    "prepare-script",
    "image",
    "guest-builds-dir",
    "guest-cache-dir",
    "allowed-images",
    "pull-policy",
    "memory",
    "cpus",
    "max-memory",
    "max-cpus",
    "concurrency",
    "insecure-registries",
    "ssh-port",
    "network",
    "network-filter",
    "address-sources",
    "auto-prune",
    "keep-free",
    "no-run",
    "omit-backingstore",
    "verbosity",
];

/// When prepare asks the registry for the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Every job fetches (only what changed is downloaded), so moving tags are followed.
    Always,
    /// Fetch only when the local store lacks the image.
    IfNotPresent,
    /// Never fetch; the image must be in the local store.
    Never,
}

impl PullPolicy {
    fn parse(value: &str) -> Option<PullPolicy> {
        match value.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "always" => Some(PullPolicy::Always),
            "if-not-present" => Some(PullPolicy::IfNotPresent),
            "never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

/// Who chose the image: the job (untrusted, checked against `allowed-images`) or the
/// administrator's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOrigin {
    /// The job's `image:`.
    Job,
    /// The `image` key of this section.
    Config(String),
}

/// The image to run the job in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobImage {
    /// The reference as written.
    pub name: String,
    /// Where it came from.
    pub origin: ImageOrigin,
}

/// Everything the stages need to know, resolved. Not `Debug`: it holds the SSH password; see
/// [`Settings::summary`].
#[derive(Clone)]
pub struct Settings {
    /// The configuration section chosen for the image (`None`: only `[DEFAULT]` applies).
    pub section: Option<String>,
    /// libvirt URI.
    pub connect: Option<String>,
    /// SSH user (`None`: the image's, else `vagrant`).
    pub username: Option<String>,
    /// SSH password (`None`: the image's, else `vagrant`).
    pub password: Option<String>,
    /// SSH private key file or directory of keys.
    pub identity_file: Option<PathBuf>,
    /// How long prepare waits for an address and an SSH login.
    pub timeout: Duration,
    /// The local OCI store.
    pub ocidir: PathBuf,
    /// Where imported base VMs go.
    pub vmdir: PathBuf,
    /// Where the job VMs' overlays go.
    pub clonedir: PathBuf,
    /// Run in the guest at the end of prepare.
    pub prepare_script: Option<PathBuf>,
    /// The job's image.
    pub image: Option<JobImage>,
    /// `builds_dir` for the runner (a path in the guest).
    pub guest_builds_dir: Option<String>,
    /// `cache_dir` for the runner (a path in the guest).
    pub guest_cache_dir: Option<String>,
    /// Patterns of images jobs may ask for (empty: any).
    pub allowed_images: Vec<String>,
    /// When to fetch.
    pub pull_policy: PullPolicy,
    /// Memory of the job VM in MiB (`None`: the image's).
    pub memory_mib: Option<u64>,
    /// Virtual CPUs of the job VM (`None`: the image's).
    pub cpus: Option<u32>,
    /// The most memory (MiB) a job VM gets, whatever its image asks for.
    pub max_memory_mib: u64,
    /// The most virtual CPUs a job VM gets, whatever its image asks for.
    pub max_cpus: u32,
    /// Registries (`host[:port]`) spoken to over plain http.
    pub insecure_registries: Vec<String>,
    /// SSH port in the guest (`None`: the image's, else 22).
    pub ssh_port: Option<u16>,
    /// The libvirt network every interface of a job VM is put on, whatever the image says.
    pub network: String,
    /// The nwfilter on every job VM interface (`None`: `network-filter = none`).
    pub network_filter: Option<String>,
    /// Where the job VM's address is looked up, in order (`address-sources`, default the
    /// network's DHCP lease of the VM's own MAC only: the guest agent is the guest's word).
    pub address_sources: Vec<AddressSource>,
    /// With `auto-prune = yes`: the space to keep free on top of what a fetch or an import
    /// needs, pruning least recently used images when it is short (`keep-free`, 1 GiB).
    pub auto_prune: Option<u64>,
    /// Warnings found while resolving (unknown keys), for the log.
    pub warnings: Vec<String>,
}

/// Where values are looked up: the chosen section (which inherits `[DEFAULT]`) or `[DEFAULT]`.
struct Lookup<'a> {
    config: &'a Config,
    section: &'a str,
}

impl Lookup<'_> {
    fn entry(&self, key: &str) -> Option<&Entry> {
        self.config
            .entry(self.section, key)
            .filter(|e| !e.value().trim().is_empty())
    }

    fn string(&self, key: &str) -> Option<String> {
        self.entry(key).map(|e| e.value().trim().to_owned())
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.config.get_path(self.section, key)
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.entry(key)
            .map(|e| {
                e.value()
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Converts a value with `parse`, naming file, line, section and key when it fails.
    fn parsed<T>(
        &self,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> anyhow::Result<Option<T>> {
        let Some(entry) = self.entry(key) else {
            return Ok(None);
        };
        match parse(entry.value().trim()) {
            Some(value) => Ok(Some(value)),
            None => bail!(
                "{}:{}: invalid value {:?} for '{key}' in section [{}]: expected {expected}",
                entry.origin(),
                entry.line(),
                entry.value().trim(),
                entry.section()
            ),
        }
    }
}

/// `address-sources`: a list of `lease`, `arp` and `agent` (default: `lease`).
fn address_sources(lookup: &Lookup<'_>) -> anyhow::Result<Vec<AddressSource>> {
    let names = lookup.list("address-sources");
    if names.is_empty() {
        return Ok(vec![AddressSource::Lease]);
    }
    names
        .iter()
        .map(|name| {
            [AddressSource::Lease, AddressSource::Arp, AddressSource::Agent]
                .into_iter()
                .find(|source| source.as_str().eq_ignore_ascii_case(name))
                .with_context(|| {
                    format!("invalid address source {name:?} in 'address-sources': expected lease, arp or agent")
                })
        })
        .collect()
}

/// Resolves the settings for a job whose `image:` is `job_image` (if it has one).
pub fn resolve(
    cli: &SharedOptions,
    config: &Config,
    job_image: Option<&str>,
) -> anyhow::Result<Settings> {
    let config_default_image = config
        .get(DEFAULT_SECTION, "image")
        .map(str::trim)
        .filter(|i| !i.is_empty());
    let requested = match job_image {
        Some(name) => Some(JobImage {
            name: name.to_owned(),
            origin: ImageOrigin::Job,
        }),
        None => config_default_image.map(|name| JobImage {
            name: name.to_owned(),
            origin: ImageOrigin::Config(DEFAULT_SECTION.to_owned()),
        }),
    };
    let section = requested
        .as_ref()
        .and_then(|image| sardine_config::best_matching_section(config.sections(), &image.name))
        .map(str::to_owned);
    let lookup = Lookup {
        config,
        section: section.as_deref().unwrap_or(DEFAULT_SECTION),
    };
    let image = match (&section, own_image(config, section.as_deref())) {
        (Some(section), Some(name)) => Some(JobImage {
            name,
            origin: ImageOrigin::Config(section.clone()),
        }),
        _ => requested,
    };
    let timeout = match cli.timeout {
        Some(timeout) => timeout,
        None => config
            .get_duration(lookup.section, "timeout")?
            .unwrap_or(DEFAULT_TIMEOUT),
    };
    let concurrency = lookup
        .parsed("concurrency", "a number of jobs from 1", |v| {
            v.parse::<u64>().ok().filter(|n| *n > 0)
        })?
        .unwrap_or(1);
    Ok(Settings {
        connect: cli.connect.clone().or_else(|| lookup.string("connect")),
        username: cli.username.clone().or_else(|| lookup.string("username")),
        password: password(cli, &lookup)?,
        identity_file: cli
            .identity_file
            .clone()
            .or_else(|| lookup.path("identity-file")),
        timeout,
        ocidir: cli
            .ocidir
            .clone()
            .or_else(|| lookup.path("ocidir"))
            .unwrap_or_else(|| DEFAULT_OCIDIR.into()),
        vmdir: cli
            .vmdir
            .clone()
            .or_else(|| lookup.path("vmdir"))
            .unwrap_or_else(|| DEFAULT_VMDIR.into()),
        clonedir: cli
            .clonedir
            .clone()
            .or_else(|| lookup.path("clonedir"))
            .unwrap_or_else(|| DEFAULT_CLONEDIR.into()),
        prepare_script: cli
            .prepare_script
            .clone()
            .or_else(|| lookup.path("prepare-script")),
        image,
        guest_builds_dir: lookup.string("guest-builds-dir"),
        guest_cache_dir: lookup.string("guest-cache-dir"),
        allowed_images: lookup.list("allowed-images"),
        pull_policy: lookup
            .parsed(
                "pull-policy",
                "always, if-not-present or never",
                PullPolicy::parse,
            )?
            .unwrap_or(PullPolicy::Always),
        memory_mib: lookup.parsed(
            "memory",
            "a size like 2048 (MiB), 512M or 4G, at least 1 MiB",
            parse_memory_mib,
        )?,
        cpus: lookup.parsed("cpus", "a number of CPUs from 1", |v| {
            v.parse().ok().filter(|n| *n > 0)
        })?,
        max_memory_mib: lookup
            .parsed(
                "max-memory",
                "a size like 8192 (MiB), 512M or 4G, at least 1 MiB",
                parse_memory_mib,
            )?
            .unwrap_or_else(|| host_share(host_memory_mib(), concurrency)),
        max_cpus: lookup
            .parsed("max-cpus", "a number of CPUs from 1", |v| {
                v.parse().ok().filter(|n| *n > 0)
            })?
            .unwrap_or_else(|| {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
                u32::try_from(host_share(cpus, concurrency)).unwrap_or(u32::MAX)
            }),
        insecure_registries: lookup.list("insecure-registries"),
        ssh_port: lookup.parsed("ssh-port", "a TCP port from 1 to 65535", |v| {
            v.parse().ok().filter(|p| *p > 0)
        })?,
        network: lookup
            .string("network")
            .unwrap_or_else(|| DEFAULT_NETWORK.to_owned()),
        network_filter: match lookup.string("network-filter") {
            Some(none) if none.eq_ignore_ascii_case("none") => None,
            Some(filter) => Some(filter),
            None => Some(DEFAULT_NETWORK_FILTER.to_owned()),
        },
        address_sources: address_sources(&lookup)?,
        auto_prune: auto_prune(config, lookup.section)?,
        warnings: unknown_keys(config, lookup.section),
        section,
    })
}

/// The space to keep free when `auto-prune` is on (`keep-free`, default 1 GiB).
/// The SSH password: `--password-file`, `--password` (with a warning: `ps` shows it), the
/// config file's `password-file` or `password`.
fn password(cli: &SharedOptions, lookup: &Lookup<'_>) -> anyhow::Result<Option<String>> {
    if let Some(path) = &cli.password_file {
        return read_password_file(path).map(Some);
    }
    if let Some(password) = &cli.password {
        tracing::warn!(
            "--password is visible to every local user in the process list; use --password-file or the config file's password-file"
        );
        return Ok(Some(password.clone()));
    }
    if let Some(path) = lookup.path("password-file") {
        return read_password_file(&path).map(Some);
    }
    Ok(lookup.entry("password").map(|e| e.value().to_owned()))
}

/// The first line of `path`, without its line end.
fn read_password_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = fs_err::read_to_string(path).context("cannot read the SSH password file")?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

fn auto_prune(config: &Config, section: &str) -> anyhow::Result<Option<u64>> {
    if !config.get_bool(section, "auto-prune")?.unwrap_or(false) {
        return Ok(None);
    }
    Ok(Some(
        config
            .get_size(section, "keep-free")?
            .unwrap_or(DEFAULT_KEEP_FREE),
    ))
}

/// The `image` key written in `section` itself: `[DEFAULT]`'s image is only for jobs without
/// an `image:`, never a replacement for the image a job asked for.
fn own_image(config: &Config, section: Option<&str>) -> Option<String> {
    let section = section?;
    let entry = config.entry(section, "image")?;
    (entry.section() == section && !entry.value().trim().is_empty())
        .then(|| entry.value().trim().to_owned())
}

/// A memory size: a plain number is MiB, otherwise a size with a unit.
/// A job's share of `total` when `concurrency` jobs run at once (at least 1).
fn host_share(total: u64, concurrency: u64) -> u64 {
    (total / concurrency.max(1)).max(1)
}

/// The host's memory in MiB (`MemTotal` of `/proc/meminfo`; 1 GiB if it cannot be read).
fn host_memory_mib() -> u64 {
    let meminfo = fs_err::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(1024, |kib| kib / 1024)
}

fn parse_memory_mib(value: &str) -> Option<u64> {
    let mib = if value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse().ok()?
    } else {
        sardine_config::parse_size(value).ok()? >> 20
    };
    (mib > 0).then_some(mib)
}

fn unknown_keys(config: &Config, section: &str) -> Vec<String> {
    let mut sections = vec![DEFAULT_SECTION];
    if section != DEFAULT_SECTION {
        sections.push(section);
    }
    sections
        .into_iter()
        .flat_map(|s| config.keys(s).map(move |key| (s, key)))
        .filter(|(_, key)| !KNOWN_KEYS.contains(key))
        .map(|(s, key)| format!("unknown key '{key}' in section [{s}] is ignored"))
        .collect()
}

impl Settings {
    /// Checks that the job may use its image; an image chosen by the configuration always may.
    pub fn check_image_allowed(&self) -> anyhow::Result<()> {
        let Some(image) = &self.image else {
            return Ok(());
        };
        if image.origin != ImageOrigin::Job {
            return Ok(());
        }
        if self.allowed_images.is_empty() {
            tracing::warn!(
                "no 'allowed-images' configured: jobs may run any image; list the images you trust (see docs/gitlab-runner.md)"
            );
            return Ok(());
        }
        if image_allowed(&self.allowed_images, &image.name) {
            return Ok(());
        }
        bail!(
            "image {:?} is not allowed on this runner (allowed-images: {}); ask the runner's administrator, or use an allowed image",
            image.name,
            self.allowed_images.join(", ")
        )
    }

    /// The image as a parsed reference.
    pub fn reference(&self) -> anyhow::Result<Reference> {
        let Some(image) = &self.image else {
            bail!(
                "the job names no image and the configuration sets no default; give the job an `image:`, or set `image` in [DEFAULT]"
            )
        };
        Reference::parse(&image.name)
            .with_context(|| format!("invalid image reference {:?}", image.name))
    }

    /// The settings as `key = value` lines for the log, without secrets.
    pub fn summary(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".to_owned());
        let path = |v: &Option<PathBuf>| {
            v.as_ref()
                .map_or_else(|| "(unset)".to_owned(), |p| p.display().to_string())
        };
        let image = self.image.as_ref().map_or_else(
            || "(none)".to_owned(),
            |i| match &i.origin {
                ImageOrigin::Job => format!("{} (from the job)", i.name),
                ImageOrigin::Config(section) => format!("{} (from [{section}])", i.name),
            },
        );
        [
            format!(
                "section = {}",
                self.section.as_deref().unwrap_or(DEFAULT_SECTION)
            ),
            format!("image = {image}"),
            format!("connect = {}", opt(&self.connect)),
            format!("username = {}", opt(&self.username)),
            format!(
                "password = {}",
                if self.password.is_some() {
                    "(set)"
                } else {
                    "(unset)"
                }
            ),
            format!("identity-file = {}", path(&self.identity_file)),
            format!(
                "ssh-port = {}",
                self.ssh_port
                    .map_or_else(|| "(unset)".to_owned(), |p| p.to_string())
            ),
            format!("timeout = {} s", self.timeout.as_secs_f64()),
            format!("ocidir = {}", self.ocidir.display()),
            format!("vmdir = {}", self.vmdir.display()),
            format!("clonedir = {}", self.clonedir.display()),
            format!("prepare-script = {}", path(&self.prepare_script)),
            format!("guest-builds-dir = {}", opt(&self.guest_builds_dir)),
            format!("guest-cache-dir = {}", opt(&self.guest_cache_dir)),
            format!("allowed-images = {}", self.allowed_images.join(", ")),
            format!("pull-policy = {:?}", self.pull_policy),
            format!(
                "memory = {}",
                self.memory_mib
                    .map_or_else(|| "(image's)".to_owned(), |m| format!("{m} MiB"))
            ),
            format!(
                "cpus = {}",
                self.cpus
                    .map_or_else(|| "(image's)".to_owned(), |c| c.to_string())
            ),
            format!("max-memory = {} MiB", self.max_memory_mib),
            format!("max-cpus = {}", self.max_cpus),
            format!(
                "insecure-registries = {}",
                self.insecure_registries.join(", ")
            ),
            format!("network = {}", self.network),
            format!(
                "network-filter = {}",
                self.network_filter.as_deref().unwrap_or("none")
            ),
            format!(
                "address-sources = {}",
                self.address_sources
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ]
        .join("\n")
    }

    /// Whether `registry` is to be spoken to over plain http.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_registries.iter().any(|r| r == registry)
    }
}

/// Whether `image` matches one of `patterns` (shell patterns; `*` also matches `/`), as written
/// or with the default tag `:latest` added.
pub fn image_allowed(patterns: &[String], image: &str) -> bool {
    let with_tag = Reference::parse(image)
        .ok()
        .filter(|r| r.tag().is_none() && r.digest().is_none())
        .map(|r| format!("{}:latest", r.name()));
    patterns.iter().any(|pattern| {
        sardine_config::fnmatch(pattern, image)
            || with_tag
                .as_deref()
                .is_some_and(|t| sardine_config::fnmatch(pattern, t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse_str(text, "test.ini").unwrap()
    }

    fn resolve_with(cli: &SharedOptions, text: &str, image: Option<&str>) -> Settings {
        resolve(cli, &config(text), image).unwrap()
    }

    #[test]
    fn built_in_defaults() {
        let settings = resolve_with(&SharedOptions::default(), "", Some("reg.example/vm:1"));
        assert_eq!(settings.timeout, Duration::from_secs(120));
        assert_eq!(settings.ocidir, PathBuf::from("/var/lib/sardinecake/oci"));
        assert_eq!(settings.vmdir, PathBuf::from("/var/lib/sardinecake/vms"));
        assert_eq!(
            settings.clonedir,
            PathBuf::from("/var/lib/sardinecake/clones")
        );
        assert_eq!(settings.pull_policy, PullPolicy::Always);
        assert_eq!(settings.connect, None);
        assert_eq!(settings.username, None);
        assert_eq!(settings.section, None);
        assert_eq!(
            settings.image,
            Some(JobImage {
                name: "reg.example/vm:1".into(),
                origin: ImageOrigin::Job
            })
        );
    }

    const INI: &str = "
[DEFAULT]
timeout = 60
username = vagrant
ocidir = /srv/oci
allowed-images = reg.example/*, other.example/vm:1
image = reg.example/default:1

[reg.example/*]
username = root
memory = 1G
cpus = 2

[reg.example/special:*]
timeout = 5m
image = reg.example/replaced:2
pull_policy = if-not-present
";

    #[test]
    fn section_then_default_then_builtin() {
        let settings = resolve_with(&SharedOptions::default(), INI, Some("reg.example/vm:1"));
        assert_eq!(settings.section.as_deref(), Some("reg.example/*"));
        assert_eq!(
            settings.username.as_deref(),
            Some("root"),
            "the section beats [DEFAULT]"
        );
        assert_eq!(
            settings.timeout,
            Duration::from_secs(60),
            "[DEFAULT] is inherited"
        );
        assert_eq!(settings.ocidir, PathBuf::from("/srv/oci"));
        assert_eq!(settings.vmdir, PathBuf::from(DEFAULT_VMDIR));
        assert_eq!(settings.memory_mib, Some(1024));
        assert_eq!(settings.cpus, Some(2));
        assert_eq!(
            settings.image.unwrap().name,
            "reg.example/vm:1",
            "[DEFAULT]'s image does not replace the job's"
        );
    }

    #[test]
    fn auto_prune_is_off_by_default_and_keeps_one_gib_free_when_on() {
        let off = resolve_with(&SharedOptions::default(), "", Some("reg.example/vm:1"));
        assert_eq!(off.auto_prune, None);
        let ini = "[DEFAULT]\nauto-prune = yes\n[reg.example/big*]\nkeep-free = 50GiB\n";
        let on = resolve_with(&SharedOptions::default(), ini, Some("reg.example/vm:1"));
        assert_eq!(on.auto_prune, Some(1 << 30));
        let big = resolve_with(&SharedOptions::default(), ini, Some("reg.example/big:1"));
        assert_eq!(big.auto_prune, Some(50 << 30));
        assert!(big.warnings.is_empty(), "{:?}", big.warnings);
        let config = Config::parse_str("[DEFAULT]\nauto-prune = maybe\n", "test.ini").unwrap();
        let Err(error) = resolve(&SharedOptions::default(), &config, None) else {
            panic!("auto-prune = maybe was accepted");
        };
        assert!(format!("{error:#}").contains("auto-prune"), "{error:#}");
    }

    #[test]
    fn command_line_beats_everything() {
        let cli = SharedOptions {
            username: Some("admin".into()),
            timeout: Some(Duration::from_secs(7)),
            ocidir: Some("/cli/oci".into()),
            ..SharedOptions::default()
        };
        let settings = resolve_with(&cli, INI, Some("reg.example/special:3"));
        assert_eq!(settings.username.as_deref(), Some("admin"));
        assert_eq!(settings.timeout, Duration::from_secs(7));
        assert_eq!(settings.ocidir, PathBuf::from("/cli/oci"));
    }

    #[test]
    fn the_most_specific_section_wins_and_may_replace_the_image() {
        let settings = resolve_with(
            &SharedOptions::default(),
            INI,
            Some("reg.example/special:3"),
        );
        assert_eq!(settings.section.as_deref(), Some("reg.example/special:*"));
        assert_eq!(settings.timeout, Duration::from_secs(300));
        assert_eq!(settings.pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(
            settings.username.as_deref(),
            Some("vagrant"),
            "sections are not merged with each other"
        );
        let image = settings.image.unwrap();
        assert_eq!(image.name, "reg.example/replaced:2");
        assert_eq!(
            image.origin,
            ImageOrigin::Config("reg.example/special:*".into())
        );
    }

    #[test]
    fn jobs_without_image_use_the_default_image_and_its_section() {
        let settings = resolve_with(&SharedOptions::default(), INI, None);
        let image = settings.image.clone().unwrap();
        assert_eq!(image.name, "reg.example/default:1");
        assert_eq!(image.origin, ImageOrigin::Config("DEFAULT".into()));
        assert_eq!(settings.section.as_deref(), Some("reg.example/*"));
        assert!(settings.check_image_allowed().is_ok());
        let none = resolve_with(&SharedOptions::default(), "", None);
        assert_eq!(none.image, None);
        assert!(
            none.reference()
                .unwrap_err()
                .to_string()
                .contains("names no image")
        );
    }

    #[test]
    fn paths_are_tilde_expanded() {
        let settings = resolve_with(
            &SharedOptions::default(),
            "[DEFAULT]\nvmdir = ~/vms\n",
            None,
        );
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(settings.vmdir, PathBuf::from(home).join("vms"));
        }
    }

    #[test]
    fn allowed_images() {
        let allowed = |image: &str| {
            let settings = resolve_with(&SharedOptions::default(), INI, Some(image));
            settings.check_image_allowed().map_err(|e| e.to_string())
        };
        assert!(allowed("reg.example/vm:1").is_ok());
        assert!(allowed("other.example/vm:1").is_ok());
        assert!(allowed("other.example/vm").is_err());
        let err = allowed("evil.example/vm:1").unwrap_err();
        assert!(
            err.contains("\"evil.example/vm:1\" is not allowed"),
            "{err}"
        );
        let open = resolve_with(&SharedOptions::default(), "", Some("any.example/vm:1"));
        assert!(
            open.check_image_allowed().is_ok(),
            "empty allowed-images allows everything"
        );
    }

    #[test]
    fn default_tag_matches_latest_patterns() {
        let patterns = vec!["reg.example/vm:latest".to_owned()];
        assert!(image_allowed(&patterns, "reg.example/vm"));
        assert!(image_allowed(&patterns, "reg.example/vm:latest"));
        assert!(!image_allowed(&patterns, "reg.example/vm:2"));
    }

    #[test]
    fn invalid_values_name_file_line_and_key() {
        for (text, needle) in [
            (
                "[DEFAULT]\npull-policy = sometimes\n",
                "test.ini:2: invalid value \"sometimes\" for 'pull-policy'",
            ),
            ("[DEFAULT]\nmemory = lots\n", "for 'memory'"),
            ("[DEFAULT]\ncpus = 0\n", "for 'cpus'"),
            ("[DEFAULT]\nssh-port = 70000\n", "for 'ssh-port'"),
            ("[DEFAULT]\ntimeout = soon\n", "invalid value for 'timeout'"),
        ] {
            let Err(err) = resolve(&SharedOptions::default(), &config(text), None) else {
                panic!("{text} was accepted")
            };
            assert!(format!("{err:#}").contains(needle), "{err:#}");
        }
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory_mib("2048"), Some(2048));
        assert_eq!(parse_memory_mib("512M"), Some(512));
        assert_eq!(parse_memory_mib("4 GiB"), Some(4096));
        assert_eq!(parse_memory_mib("100k"), None);
    }

    #[test]
    fn lists_split_on_commas_and_whitespace() {
        let settings = resolve_with(
            &SharedOptions::default(),
            "[DEFAULT]\ninsecure-registries = a:5000,b\n  c:1\n",
            None,
        );
        assert_eq!(settings.insecure_registries, ["a:5000", "b", "c:1"]);
        assert!(settings.is_insecure("b"));
        assert!(!settings.is_insecure("d"));
    }

    #[test]
    fn job_vms_get_at_most_their_share_of_the_host() {
        let settings = resolve(
            &SharedOptions::default(),
            &config("[DEFAULT]\nmax-memory = 2G\nmax-cpus = 2\n"),
            None,
        )
        .unwrap();
        assert_eq!((settings.max_memory_mib, settings.max_cpus), (2048, 2));
        let one = resolve(&SharedOptions::default(), &config(""), None).unwrap();
        let four = resolve(
            &SharedOptions::default(),
            &config("[DEFAULT]\nconcurrency = 4\n"),
            None,
        )
        .unwrap();
        assert!(
            one.max_memory_mib >= four.max_memory_mib * 4,
            "a quarter each"
        );
        assert!(four.max_cpus >= 1);
        assert_eq!(host_share(7, 4), 1);
        assert_eq!(host_share(1, 4), 1, "never zero");
    }

    #[test]
    fn the_password_comes_from_a_file_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        fs_err::write(&file, "from-file\nignored\n").unwrap();
        let with_file = config(&format!(
            "[DEFAULT]\npassword = from-config\npassword-file = {}\n",
            file.display()
        ));
        let settings = resolve(&SharedOptions::default(), &with_file, None).unwrap();
        assert_eq!(settings.password.as_deref(), Some("from-file"));
        let cli = SharedOptions {
            password: Some("from-cli".into()),
            ..SharedOptions::default()
        };
        let settings = resolve(&cli, &with_file, None).unwrap();
        assert_eq!(settings.password.as_deref(), Some("from-cli"));
        let plain = config("[DEFAULT]\npassword = from-config\n");
        let settings = resolve(&SharedOptions::default(), &plain, None).unwrap();
        assert_eq!(settings.password.as_deref(), Some("from-config"));
    }

    #[test]
    fn summary_hides_the_password() {
        let settings = resolve_with(
            &SharedOptions::default(),
            "[DEFAULT]\npassword = hunter2\n",
            Some("r.example/x"),
        );
        let summary = settings.summary();
        assert!(!summary.contains("hunter2"), "{summary}");
        assert!(summary.contains("password = (set)"), "{summary}");
        assert!(
            summary.contains("image = r.example/x (from the job)"),
            "{summary}"
        );
    }

    #[test]
    fn unknown_keys_are_reported() {
        let settings = resolve_with(
            &SharedOptions::default(),
            "[DEFAULT]\nalowed-images = x\nverbosity = 2\n",
            None,
        );
        assert_eq!(
            settings.warnings,
            ["unknown key 'alowed-images' in section [DEFAULT] is ignored"]
        );
    }
}
