//! The `sarde` command line: every subcommand, option and argument, defined once with its
//! documentation. Help, man pages and shell completions are generated from these definitions,
//! and [`crate::settings`] derives each option's configuration key from them (the long option
//! name, or the argument name for positionals), so nothing here is repeated elsewhere.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum, ValueHint};

/// Text shown after the top-level help, before the list of environment variables.
const MAIN_AFTER_HELP: &str = "\
Every option can also be set in a configuration file: the key is the long option name (or the
argument name), in the section named after the subcommand, or in [DEFAULT] for all of them:

    [DEFAULT]
    ocidir = ~/oci
    [export]
    chunksize = 256 MiB

Files, read in this order: /etc/sardinecake/sarde.ini, ~/.config/sardinecake/sarde.ini,
$XDG_CONFIG_HOME/sardinecake/sarde.ini; or those in SARDE_CONF_FILES. The command line wins
over the subcommand's section, which wins over [DEFAULT], which wins over built-in defaults.

Examples:
  sarde export myvm registry.example.org/vms/debian:12
  sarde push registry.example.org/vms/debian:12
  sarde pull registry.example.org/vms/debian:12
  sarde list";

/// Share libvirt virtual machines through OCI container registries.
///
/// sarde exports a libvirt VM into a local store of OCI images, pushes images to and fetches
/// them from any OCI registry, imports them as VMs, and makes copy-on-write clones of them.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sarde",
    version,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options of every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The text after the top-level help: configuration, examples and environment variables.
pub fn after_help() -> String {
    format!("{MAIN_AFTER_HELP}\n\n{}", crate::env::help())
}

/// Options accepted before and after every subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// libvirt connection URI, such as qemu:///system.
    ///
    /// Without it, libvirt chooses (it honours LIBVIRT_DEFAULT_URI, then its own default).
    #[arg(short = 'c', long, global = true, value_name = "URI")]
    pub connect: Option<String>,

    /// Log more: -v shows debug messages, -vv also trace messages.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Log less: -q shows only warnings and errors, -qq only errors.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,

    /// Only parse the command line and the configuration, then exit (with -v: show the result).
    #[arg(long, global = true)]
    pub no_run: bool,

    /// Directory of the local image store.
    ///
    /// The default is the same wherever sarde runs, as for podman: /var/lib/sardinecake/oci for
    /// root (also the GitLab executor's store), $XDG_DATA_HOME/sardinecake/oci
    /// (~/.local/share/sardinecake/oci) for other users. sardinecake 0.4.2 used ./oci: pass
    /// `--ocidir oci`, or set `ocidir` in the [DEFAULT] section of a configuration file, to keep
    /// using such a store.
    #[arg(
        short = 'd',
        long,
        global = true,
        value_name = "DIR",
        default_value_os_t = sardine_config::data_dir().join("oci"),
        value_hint = ValueHint::DirPath
    )]
    pub ocidir: PathBuf,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Log in to a registry and store the credentials.
    #[command(after_help = "Examples:
  sarde login registry.example.org -u fish
  echo \"$TOKEN\" | sarde login registry.example.org -u fish --password-stdin
  SARDE_REGISTRY_PASSWORD=secret sarde login localhost:5000 -u fish")]
    Login(LoginArgs),

    /// Remove the stored credentials of a registry.
    #[command(after_help = "Examples:
  sarde logout registry.example.org
  sarde logout --all")]
    Logout(LogoutArgs),

    /// Copy an image from a registry into the local store.
    #[command(after_help = "Examples:
  sarde fetch registry.example.org/vms/debian:12
  sarde fetch debian:12 --source registry.example.org/vms/debian:12
  sarde fetch localhost:5000/vms/debian:12 --insecure")]
    Fetch(FetchCommand),

    /// Copy an image from the local store to registries.
    #[command(after_help = "Examples:
  sarde push registry.example.org/vms/debian:12
  sarde push debian:12 -t reg.example.org/vms/debian:12 -t reg.example.org/vms/debian:latest
  sarde push localhost:5000/vms/debian:12 --insecure --upload-chunk-size 4MiB")]
    Push(PushArgs),

    /// Fetch an image and import it as a VM (fetch, then import).
    #[command(after_help = "Examples:
  sarde pull registry.example.org/vms/debian:12
  sarde pull registry.example.org/vms/debian:12 --name debian12 --vmdir /srv/vms")]
    Pull(PullArgs),

    /// Turn a libvirt VM into an image in the local store.
    ///
    /// Prints the image ID (the config digest, as bare hex).
    #[command(after_help = "Examples:
  sarde export myvm
  sarde export myvm registry.example.org/vms/debian:12
  sarde export myvm debian:12 --vmconfig users.json --chunksize 256MiB
  sarde export myvm debian:12 --legacy      # readable by sardinecake 0.4.2")]
    Export(ExportArgs),

    /// Define a libvirt VM from an image in the local store.
    ///
    /// Prints the name of the VM (or its UUID with --print-uuid).
    #[command(after_help = "Examples:
  sarde import registry.example.org/vms/debian:12
  sarde import debian:12 --name debian12 --vmdir /srv/vms
  sarde import --raw ./oci/debian:12")]
    Import(ImportArgs),

    /// List the images in the local store and the state of their VMs.
    #[command(after_help = "Examples:
  sarde list
  sarde list --format json
  sarde list --vms
  sarde list --vms --format json")]
    List(ListArgs),

    /// Print the sardine configuration (users, services) of an image as JSON.
    #[command(after_help = "Examples:
  sarde getconfig registry.example.org/vms/debian:12
  sarde getconfig --raw ./oci/debian:12")]
    Getconfig(GetconfigArgs),

    /// Show what an image is: digests, architecture, files and sizes, configurations.
    #[command(after_help = "Examples:
  sarde inspect registry.example.org/vms/debian:12
  sarde inspect debian:12 --format json")]
    Inspect(InspectArgs),

    /// Give an image of the local store another name (the same manifest, no copy).
    #[command(after_help = "Examples:
  sarde tag debian:12 registry.example.org/vms/debian:12
  sarde tag registry.example.org/vms/debian:12 debian:stable")]
    Tag(TagArgs),

    /// Start VMs.
    #[command(after_help = "Examples:
  sarde start job-42
  sarde start job-42 job-43")]
    Start(StartArgs),

    /// Shut VMs down: ask the guest (ACPI), power off after --timeout.
    #[command(after_help = "Examples:
  sarde stop job-42
  sarde stop --timeout 5m job-42
  sarde stop --force job-42 job-43     # power off at once")]
    Stop(StopArgs),

    /// Make a copy-on-write clone of an image's VM.
    ///
    /// Imports the image first if needed (from the local store; it does not fetch). Prints the
    /// clone's name.
    #[command(after_help = "Examples:
  sarde clone registry.example.org/vms/debian:12 job-42
  sarde clone debian:12 scratch --start --ephemeral")]
    Clone(CloneArgs),

    /// Remove images from the local store, or VMs made from them.
    #[command(after_help = "Examples:
  sarde rm debian:12
  sarde rm --vm job-42 job-43
  sarde rm --image --force debian:12")]
    Rm(RmArgs),

    /// Remove unused images, blobs and VMs from the local store.
    #[command(after_help = "Examples:
  sarde prune --dry-run
  sarde prune --older-than 30d
  sarde prune --space-budget 200GiB --format json")]
    Prune(PruneArgs),

    /// Print the IP address of a running VM.
    #[command(after_help = "Examples:
  sarde ip job-42
  sarde ip job-42 --wait 60s --source agent")]
    Ip(IpArgs),

    /// Run a command in a VM over SSH, or log in interactively.
    ///
    /// User and password come from the image's sardine configuration unless --user or
    /// --identity-file say otherwise.
    #[command(after_help = "Examples:
  sarde ssh job-42
  sarde ssh job-42 -- uname -a
  sarde ssh job-42 --user root -i ~/.ssh/id_ed25519 -- systemctl status
  sarde exec job-42 -- make test")]
    #[command(visible_alias = "exec")]
    Ssh(SshArgs),

    /// Run a command in a throwaway VM: start a copy-on-write clone of IMAGE (fetched and
    /// imported first if needed), run COMMAND in it over SSH, exit with its status, and throw
    /// the clone away.
    ///
    /// Without COMMAND: on a terminal, an interactive login shell on a pseudo-terminal; with
    /// --stdin, the user's shell reads a script from standard input. Exit statuses: COMMAND's; 124 when --timeout
    /// ran out; 130/143 when interrupted by SIGINT/SIGTERM (nothing is left behind); 125 when
    /// sarde itself failed (as `docker run`).
    #[command(after_help = "Examples:
  sarde run registry.example.org/vms/debian:12 -- uname -a
  sarde run debian:12 --cpus 4 --memory 4GiB --mount ./src:/src -- make -C /src test
  sarde run debian:12 -p 127.0.0.1:8080:80 --detach
  sarde run tiny:1 --kernel ./bzImage --cmdline 'console=ttyS0 root=/dev/vda' -- cat /proc/cmdline
  sarde run debian:12 --timeout 10m --console-log boot.log -- ./long-test
  sarde run debian:12 --stdin < ci-script.sh")]
    Run(Box<RunArgs>),

    /// Build images from a build file into the local store.
    ///
    /// Reads sarde's YAML build file (docs/build.md) or little-vm-helper's images.json. Root
    /// images are made by mmdebstrap without booting; derived images are qcow2 overlays on their
    /// parent's disk (an image of the file or of the local store), changed offline by actions
    /// and, for any OS, by steps run over SSH in the booted image; they cost only what changed,
    /// on disk and in registries. Images whose definition, parent and copied-in files are
    /// unchanged come from the build cache. Prints one line per image (name, reference, built
    /// or cached, image ID, seconds). Needs root.
    #[command(after_help = "Examples:
  sarde build                         # ./sarde-build.yaml
  sarde build -f images.yaml -i debian-dev
  sarde build -f _data/images.json --pkg-repo bookworm   # a little-vm-helper configuration
  sarde build --dry-run
  sarde build --tag registry.example.org/vms/ && sarde push registry.example.org/vms/debian-dev")]
    Build(BuildArgs),

    /// Declarative VM inventories in vm-provisioner-libvirt's registry format (read unchanged).
    #[command(after_help = "Examples:
  sarde inventory --registry 'registry/**/*.yaml' list
  sarde inventory --registry registry.yaml config vm1
  VMP_REGISTRY=registry.yaml sarde inventory image-url alpine-virt:3.20.3
  sarde inventory config vm1 < registry.yaml")]
    Inventory(InventoryArgs),

    /// Print a shell completion script.
    #[command(after_help = "Examples:
  sarde completions bash > /etc/bash_completion.d/sarde
  sarde completions zsh > \"${fpath[1]}/_sarde\"
  sarde completions fish > ~/.config/fish/completions/sarde.fish")]
    Completions(CompletionsArgs),

    /// Print the manual page (roff), or write the pages of all subcommands.
    #[command(after_help = "Examples:
  sarde man | man -l -
  sarde man --all --out-dir /usr/local/share/man/man1")]
    Man(ManArgs),
}

/// Options for connecting to registries.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// How many blobs to transfer at the same time (8 was fastest here: docs/performance.md).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Talk plain HTTP to the registry, no TLS (registries on loopback addresses get HTTP
    /// anyway unless they have a certificate directory or --tls-verify=false).
    #[arg(long)]
    pub insecure: bool,

    /// --tls-verify=true requires HTTPS and a valid certificate, loopback registries included;
    /// --tls-verify=false uses HTTPS without checking the certificate (as skopeo and podman).
    /// Default: verified HTTPS, plain HTTP for loopback registries without a certificate
    /// directory.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set)]
    pub tls_verify: Option<bool>,

    /// The registry's certificate directory: CA certificates (*.crt) and a client certificate
    /// (NAME.cert with NAME.key). Default: /etc/containers/certs.d/HOST:PORT/,
    /// /etc/docker/certs.d/HOST:PORT/ or ~/.config/containers/certs.d/HOST:PORT/.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub cert_dir: Option<PathBuf>,
}

/// Options choosing what to fetch.
#[derive(Debug, Clone, Args)]
pub struct FetchOptions {
    /// Registry reference to fetch from, when it differs from the local name CONTAINER.
    #[arg(short, long, value_name = "REFERENCE")]
    pub source: Option<String>,

    /// Architecture to choose from a multi-platform image (OCI names: amd64, arm64, ...).
    ///
    /// The default is the architecture of this machine.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
}

/// Automatic pruning when a fetch or an import lacks space.
#[derive(Debug, Clone, Args)]
pub struct AutoPruneArgs {
    /// When the file system lacks the space this needs (plus --keep-free), first remove least
    /// recently used images that a registry has, with the base VMs only they needed, as `sarde
    /// prune` would. Never removes the image at hand, images clones need, or images only
    /// exported here. Usually set once in a configuration file: `auto-prune = yes`.
    #[arg(long, conflicts_with = "no_auto_prune")]
    pub auto_prune: bool,

    /// Do not prune automatically, whatever the configuration says.
    #[arg(long)]
    pub no_auto_prune: bool,

    /// Space automatic pruning leaves free on top of what the operation needs (room for the
    /// clones' overlays).
    #[arg(long, value_name = "SIZE", value_parser = sardine_config::parse_size, default_value = "1GiB")]
    pub keep_free: u64,
}

impl AutoPruneArgs {
    /// The space to keep free when automatic pruning is on.
    pub fn keep_free_if_on(&self) -> Option<u64> {
        (self.auto_prune && !self.no_auto_prune).then_some(self.keep_free)
    }
}

/// Where the files of imported or cloned VMs go.
#[derive(Debug, Clone, Args)]
pub struct VmdirArg {
    /// Directory for the disks and other files of the VM (in a subdirectory named after it).
    ///
    /// The default is /var/lib/sardinecake/vms for root, $XDG_DATA_HOME/sardinecake/vms
    /// (~/.local/share/sardinecake/vms) for other users; sardinecake 0.4.2 used the current
    /// directory. A relative directory is made absolute: libvirt gets absolute paths only. With
    /// qemu:///system it must be a directory libvirt's QEMU user can read.
    #[arg(short = 'o', long, alias = "outdir", value_name = "DIR", default_value_os_t = sardine_config::data_dir().join("vms"), value_hint = ValueHint::DirPath)]
    pub vmdir: PathBuf,
}

/// Whether untrusted domain XML may be defined.
#[derive(Debug, Clone, Args)]
pub struct UnsafeXmlArg {
    /// Define the image's domain XML even if it uses things that reach outside the VM (host
    /// devices, host paths, QEMU command-line passthrough, ...). Only for images you trust.
    #[arg(long)]
    pub allow_unsafe_xml: bool,
}

/// Options of importing an image as a VM.
#[derive(Debug, Clone, Args)]
pub struct ImportOptions {
    /// Name of the VM (default: the image ID, `sha256:<hex>`, which `list` uses to find it).
    #[arg(short, long, value_name = "NAME")]
    pub name: Option<String>,

    /// Where the VM's files go.
    #[command(flatten)]
    pub vmdir: VmdirArg,

    /// Print the UUID of the VM instead of its name.
    #[arg(long)]
    pub print_uuid: bool,

    /// Output format: the VM's name (or UUID), or JSON with name, UUID, directory and whether
    /// it existed already.
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Whether untrusted domain XML may be defined.
    #[command(flatten)]
    pub unsafe_xml: UnsafeXmlArg,

    /// The largest file a layer of sardinecake 0.4.2's gzip format may unpack to (such layers
    /// declare no size; a qcow2 image is also bounded by its virtual size, every file by the
    /// free space).
    #[arg(long, value_name = "SIZE", value_parser = sardine_config::parse_size, default_value = "1TiB")]
    pub max_disk_size: u64,
}

/// Whether CONTAINER is a directory path rather than a name in the store.
#[derive(Debug, Clone, Args)]
pub struct RawArg {
    /// CONTAINER is the path of an OCI image layout directory (optionally with :TAG or
    /// @DIGEST), not a name in the store under --ocidir.
    #[arg(long, conflicts_with = "ocidir")]
    pub raw: bool,
}

/// Arguments of `sarde login`. Its `Debug` output hides the password.
#[derive(Clone, Args)]
pub struct LoginArgs {
    /// Registry host, with port if not the default (registry.example.org, localhost:5000).
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    /// User name (asked for when not given).
    #[arg(short, long, env = crate::env::SARDE_REGISTRY_USERNAME, value_name = "USER")]
    pub username: Option<String>,

    /// Password or token (asked for when not given). Visible to other users in the process
    /// list: prefer --password-stdin or SARDE_REGISTRY_PASSWORD.
    #[arg(
        short,
        long,
        env = crate::env::SARDE_REGISTRY_PASSWORD,
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub password: Option<String>,

    /// Read the password or token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

impl std::fmt::Debug for LoginArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginArgs")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("password_stdin", &self.password_stdin)
            .finish()
    }
}

/// Arguments of `sarde logout`.
#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// Registry host (`*` means all registries, like --all).
    #[arg(
        value_name = "REGISTRY",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub registry: Option<String>,

    /// Remove the credentials of all registries.
    #[arg(long)]
    pub all: bool,
}

impl LogoutArgs {
    /// The registry to log out of, or `None` for all of them (`--all` or `*`).
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref().filter(|r| !self.all && *r != "*")
    }
}

/// Arguments of `sarde fetch`.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// The image: its name in the store and, without --source, where to fetch it from.
    #[arg(value_name = "CONTAINER")]
    pub container: String,

    /// What to fetch.
    #[command(flatten)]
    pub fetch: FetchOptions,

    /// How to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Automatic pruning when space runs short.
    #[command(flatten)]
    pub auto_prune: AutoPruneArgs,
}

/// Arguments of `sarde fetch`: those pull shares, and the output format.
#[derive(Debug, Clone, Args)]
pub struct FetchCommand {
    /// What to fetch, and how.
    #[command(flatten)]
    pub fetch: FetchArgs,

    /// Output format: nothing, or a JSON summary (reference, source, manifest digest, blobs
    /// downloaded and already present, bytes, seconds).
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Arguments of `sarde push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The image in the store; without --target also where to push it.
    #[arg(value_name = "CONTAINER")]
    pub container: String,

    /// Registry reference to push to; repeat for several (in a configuration file: separated
    /// by whitespace).
    #[arg(short, long, value_name = "REFERENCE", action = ArgAction::Append)]
    pub target: Vec<String>,

    /// How to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Upload blobs in parts of this size instead of in one request. Some registries need parts
    /// above 5 MB, others below 4 MB. (Disks are cut into chunks at export: --chunksize there.)
    #[arg(long = "upload-chunk-size", alias = "chunk-size", value_name = "SIZE", value_parser = sardine_config::parse_size)]
    pub chunk_size: Option<u64>,

    /// Output format: nothing, or a JSON array with a summary per target (target, manifest
    /// digest, blobs uploaded, mounted and already there, bytes, seconds).
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Arguments of `sarde pull`: those of fetch, then those of import.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// The arguments of `sarde fetch`.
    #[command(flatten)]
    pub fetch: FetchArgs,

    /// The arguments of `sarde import`.
    #[command(flatten)]
    pub import: ImportOptions,
}

/// How the files of a VM are stored in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiskFormat {
    /// Fixed-size zstd chunks, packed and unpacked in parallel, unchanged chunks shared between
    /// images. Needs sarde to import.
    Chunked,
    /// sardinecake 0.4.2's gzip layers, which 0.4.2 can import.
    Legacy,
}

/// Arguments of `sarde export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The libvirt VM (name or UUID). It should be shut off; see --force.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Name of the image in the store [default: NAME].
    #[arg(value_name = "CONTAINER")]
    pub container: Option<String>,

    /// JSON file with the sardine configuration (users, services) to embed.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub vmconfig: Option<PathBuf>,

    /// Domain XML file to use instead of the VM's current definition.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub libvirtconfig: Option<PathBuf>,

    /// Size of the pieces disks are cut into ('256MiB', '1G', ...; plain numbers are bytes).
    ///
    /// Default: 16 MiB, doubled for a disk whose data would need more than 2048 chunks (512 MiB
    /// for 1 TiB of data), so that every image fits in what registries accept. For
    /// --disk-format=legacy there is no splitting without it.
    #[arg(long, value_name = "SIZE", value_parser = sardine_config::parse_size)]
    pub chunksize: Option<u64>,

    /// How to store the disks. (--format selects output formats elsewhere, hence the name.)
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = DiskFormat::Chunked)]
    pub disk_format: DiskFormat,

    /// Same as --disk-format=legacy: make an image that sardinecake 0.4.2 can import.
    #[arg(long, conflicts_with = "disk_format")]
    pub legacy: bool,

    /// Export even if the VM is running (its disks may be inconsistent).
    #[arg(long)]
    pub force: bool,

    /// Whether CONTAINER is a directory rather than a name in the store.
    #[command(flatten)]
    pub raw: RawArg,
}

impl ExportArgs {
    /// The disk format, taking --legacy into account.
    pub fn disk_format(&self) -> DiskFormat {
        if self.legacy {
            DiskFormat::Legacy
        } else {
            self.disk_format
        }
    }

    /// The image name: CONTAINER, or NAME when it is not given.
    pub fn container(&self) -> &str {
        self.container.as_deref().unwrap_or(&self.name)
    }
}

/// Arguments of `sarde import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The image in the store (or, with --raw, an OCI layout directory).
    #[arg(value_name = "CONTAINER")]
    pub container: String,

    /// Where and how to import.
    #[command(flatten)]
    pub import: ImportOptions,

    /// Whether CONTAINER is a directory rather than a name in the store.
    #[command(flatten)]
    pub raw: RawArg,

    /// Automatic pruning when space runs short.
    #[command(flatten)]
    pub auto_prune: AutoPruneArgs,
}

/// Output formats of commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Text,
    /// JSON for programs.
    Json,
}

/// Arguments of `sarde list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// List the VMs imported or cloned from images (with their image and state) instead of the
    /// images.
    #[arg(long)]
    pub vms: bool,

    /// Add each image's size in the store and its last use to the text table (without it, the
    /// table is sardinecake 0.4.2's, for the scripts that parse it).
    #[arg(short, long)]
    pub long: bool,
}

/// Arguments of `sarde getconfig`.
#[derive(Debug, Clone, Args)]
pub struct GetconfigArgs {
    /// The image in the store (or, with --raw, an OCI layout directory).
    #[arg(value_name = "CONTAINER")]
    pub container: String,

    /// Whether CONTAINER is a directory rather than a name in the store.
    #[command(flatten)]
    pub raw: RawArg,
}

/// Arguments of `sarde clone`.
#[derive(Debug, Clone, Args)]
pub struct CloneArgs {
    /// The image in the store to clone.
    #[arg(value_name = "SOURCE")]
    pub container: String,

    /// Name of the new VM.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Where the clone's files go.
    #[command(flatten)]
    pub vmdir: VmdirArg,

    /// Start the clone.
    #[arg(long)]
    pub start: bool,

    /// Make a transient clone that disappears, with its disks, when it shuts down (implies
    /// --start).
    #[arg(long)]
    pub ephemeral: bool,

    /// Virtual CPUs of the clone (default: the image's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub cpus: Option<u32>,

    /// Memory of the clone ('4GiB', '512MiB'; default: the image's).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u64>,

    /// Whether untrusted domain XML may be defined.
    #[command(flatten)]
    pub unsafe_xml: UnsafeXmlArg,
}

/// A memory size in whole MiB, at least 1 MiB.
fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = sardine_config::parse_size(text).map_err(|e| e.to_string())?;
    match bytes / (1 << 20) {
        0 => Err(format!("{text} is less than 1 MiB")),
        mib => Ok(mib),
    }
}

/// Arguments of `sarde rm`.
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Images (CONTAINER) or VMs (names) to remove.
    #[arg(value_name = "NAME", required = true, num_args = 1..)]
    pub names: Vec<String>,

    /// The names are VMs (default: try images, then VMs).
    #[arg(long, conflicts_with = "image")]
    pub vm: bool,

    /// The names are images.
    #[arg(long)]
    pub image: bool,

    /// Also remove running VMs, and images whose VMs still have clones.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `sarde prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove only images not used for this long ('30d', '12h', plain numbers are seconds).
    #[arg(long, value_name = "DURATION", value_parser = sardine_config::parse_duration)]
    pub older_than: Option<Duration>,

    /// Remove the least recently used images until the store fits in this size ('200GiB').
    #[arg(long, value_name = "SIZE", value_parser = sardine_config::parse_size)]
    pub space_budget: Option<u64>,

    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,

    /// Output format.
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Arguments of `sarde inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The image in the store.
    #[arg(value_name = "CONTAINER")]
    pub container: String,

    /// Output format (JSON has the whole manifest and configurations).
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// CONTAINER is an OCI layout directory.
    #[command(flatten)]
    pub raw: RawArg,
}

/// Arguments of `sarde tag`.
#[derive(Debug, Clone, Args)]
pub struct TagArgs {
    /// The image in the store.
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// Its new name, REPOSITORY[:TAG] (default tag: latest).
    #[arg(value_name = "TARGET")]
    pub target: String,
}

/// Arguments of `sarde start`.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// The VMs (names or UUIDs).
    #[arg(value_name = "VM", required = true, num_args = 1..)]
    pub vms: Vec<String>,
}

/// Arguments of `sarde stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The VMs (names or UUIDs).
    #[arg(value_name = "VM", required = true, num_args = 1..)]
    pub vms: Vec<String>,

    /// How long the guest may take to shut down before it is powered off ('60', '2m').
    #[arg(long, value_name = "DURATION", value_parser = sardine_config::parse_duration, default_value = "60s")]
    pub timeout: Duration,

    /// Power off at once, without asking the guest.
    #[arg(long)]
    pub force: bool,
}

/// Where to look for a VM's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AddressSource {
    /// The DHCP leases of libvirt's networks.
    Lease,
    /// The host's ARP table.
    Arp,
    /// The QEMU guest agent (must run in the guest).
    Agent,
}

/// Arguments of `sarde ip`.
#[derive(Debug, Clone, Args)]
pub struct IpArgs {
    /// The VM (name or UUID).
    #[arg(value_name = "VM")]
    pub vm: String,

    /// Wait this long for an address to appear ('60', '2m'); default: do not wait.
    #[arg(long, value_name = "DURATION", value_parser = sardine_config::parse_duration)]
    pub wait: Option<Duration>,

    /// Where to look for the address.
    #[arg(long, value_enum, value_name = "SOURCE", default_value_t = AddressSource::Lease)]
    pub source: AddressSource,

    /// Output format: the address, or JSON (`{"vm": NAME, "address": ADDRESS}`).
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Arguments of `sarde ssh`.
#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// The VM (name or UUID).
    #[arg(value_name = "VM")]
    pub vm: String,

    /// User to log in as (default: the first user of the image's sardine configuration).
    #[arg(short = 'l', long, value_name = "USER")]
    pub user: Option<String>,

    /// Private key file to log in with (default: the password from the image's sardine
    /// configuration).
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub identity_file: Option<PathBuf>,

    /// Command to run (default: an interactive shell).
    #[arg(value_name = "COMMAND", last = true, num_args = 0..)]
    pub command: Vec<String>,
}

/// When `sarde run` fetches its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// Every time (the tag may have moved).
    Always,
    /// When the local store does not have it.
    Missing,
    /// Never: the local store must have it.
    Never,
}

/// Arguments of `sarde build`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The build file: sarde's YAML, or little-vm-helper's images.json.
    #[arg(short = 'f', long = "file", value_name = "FILE", default_value = "sarde-build.yaml", value_hint = ValueHint::FilePath)]
    pub file: PathBuf,

    /// Build only this image (and the parents it needs); repeat for several.
    #[arg(short = 'i', long = "image", value_name = "NAME", action = ArgAction::Append)]
    pub images: Vec<String>,

    /// Build even the images the cache has.
    #[arg(long)]
    pub force_rebuild: bool,

    /// Only print what would be built, and why.
    #[arg(long)]
    pub dry_run: bool,

    /// Put this before each image's name to make its reference (e.g.
    /// `registry.example.org/vms/`).
    #[arg(long = "tag", value_name = "PREFIX", default_value = "")]
    pub prefix: String,

    /// The tag of the built images.
    #[arg(long = "image-tag", value_name = "TAG", default_value = "latest")]
    pub image_tag: String,

    /// The build cache [default: build/ next to the default store].
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub cache_dir: Option<PathBuf>,

    /// The Debian suite of a little-vm-helper file's root images (lvh's --pkg-repo).
    #[arg(long, value_name = "SUITE", default_value = "sid")]
    pub pkg_repo: String,

    /// libvirt domain type of every built image, whatever the file says: kvm, or qemu
    /// (emulation) for hosts without KVM.
    #[arg(long, value_name = "TYPE", value_parser = ["kvm", "qemu"])]
    pub domain_type: Option<String>,

    /// libvirt network of every built image's interface, whatever the file says.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,

    /// How to reach registries, for parents that are not in the local store yet.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Accepted for little-vm-helper's command line: sarde always applies an image's actions
    /// in one session of its mounted file system.
    #[arg(long)]
    pub merge_steps: bool,

    /// Output format: a line per image, or a JSON array.
    #[arg(long, value_enum, ignore_case = true, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Arguments of `sarde inventory`.
#[derive(Debug, Clone, Args)]
pub struct InventoryArgs {
    /// The registry: a file or a glob (files merged in sorted order); standard input without it.
    #[arg(long, value_name = "GLOB", env = "VMP_REGISTRY")]
    pub registry: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: InventoryCommand,
}

/// The subcommands of `sarde inventory` (vmp's).
#[derive(Debug, Clone, Subcommand)]
pub enum InventoryCommand {
    /// Print a VM's resolved configuration (YAML): its variables, image, node and VM.
    Config {
        /// The VM.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Print the VMs' names.
    List,
    /// Print the URL an image reference (`name[:tag]`) resolves to.
    ImageUrl {
        /// The image.
        #[arg(value_name = "IMAGE")]
        image: String,
    },
}

/// Arguments of `sarde run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The image (a reference, fetched into the local store if needed) or a defined VM.
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// When to fetch the image.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,

    /// Name of the clone (default: sarde-run-<random>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Keep the clone (defined, shut down after COMMAND) instead of throwing it away.
    #[arg(long, conflicts_with = "detach")]
    pub keep: bool,

    /// Print the clone's name once SSH answers and leave it running (remove it with `sarde rm
    /// --vm NAME`). No `-d`: that is `--ocidir`, as in sardinecake 0.4.2.
    #[arg(long)]
    pub detach: bool,

    /// User to log in as (default: the first user of the image's sardine configuration).
    #[arg(short = 'l', long, value_name = "USER")]
    pub user: Option<String>,

    /// Private key file to log in with (default: the image's password).
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub identity_file: Option<PathBuf>,

    /// Virtual CPUs (default: the image's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub cpus: Option<u32>,

    /// Memory ('4GiB', '512MiB'; default: the image's).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u64>,

    /// Boot this kernel (direct kernel boot) instead of the image's.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub kernel: Option<PathBuf>,

    /// Boot with this initrd instead of the image's.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub initrd: Option<PathBuf>,

    /// The kernel command line, instead of the image's.
    #[arg(long, value_name = "STRING")]
    pub cmdline: Option<String>,

    /// An extra disk: a raw or qcow2 file, read-only unless followed by ':rw'. Repeatable.
    #[arg(long, value_name = "FILE[:rw]", action = ArgAction::Append)]
    pub disk: Vec<String>,

    /// Share a host directory into the guest (virtiofs) and mount it there over SSH: at /TAG (default
    /// tag: host, host1, ...), or at GUESTDIR when given as an absolute path; ':ro' mounts it
    /// read-only. Repeatable.
    #[arg(long, value_name = "HOSTDIR[:TAG|:GUESTDIR][:ro]", action = ArgAction::Append)]
    pub mount: Vec<String>,

    /// Forward a port of the host (default address 127.0.0.1) to the guest. Repeatable.
    #[arg(short, long = "publish", value_name = "[HOSTADDR:]HOSTPORT:GUESTPORT", action = ArgAction::Append)]
    pub publish: Vec<String>,

    /// Write the guest's serial console output to FILE.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub console_log: Option<PathBuf>,

    /// Send standard input to COMMAND (read to its end first), as `docker run -i`.
    #[arg(long)]
    pub stdin: bool,

    /// Stop COMMAND and throw the VM away after this long ('90s', '10m'); exits 124.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// How long to wait for the guest's address and SSH login.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    pub boot_timeout: std::time::Duration,

    /// Where the image's base VM and the clone's overlays go.
    #[command(flatten)]
    pub vmdir: VmdirArg,

    /// How to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Automatic pruning when space runs short.
    #[command(flatten)]
    pub auto_prune: AutoPruneArgs,

    /// Whether untrusted domain XML may be defined.
    #[command(flatten)]
    pub unsafe_xml: UnsafeXmlArg,

    /// The command to run (joined with spaces and run by the guest user's shell, as ssh does).
    #[arg(value_name = "COMMAND", last = true, num_args = 0..)]
    pub command: Vec<String>,
}

/// A duration such as '90s', '10m' or '1h30m'.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    sardine_config::parse_duration(text).map_err(|e| e.to_string())
}

/// Arguments of `sarde completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Arguments of `sarde man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write sarde.1 and a page per subcommand (sarde-export.1, ...) into --out-dir instead of
    /// printing sarde.1.
    #[arg(long)]
    pub all: bool,

    /// Directory for --all.
    #[arg(long, value_name = "DIR", default_value = ".", requires = "all", value_hint = ValueHint::DirPath)]
    pub out_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sarde").chain(args.iter().copied()))
    }

    #[test]
    fn global_options_work_after_the_subcommand() -> Result<(), clap::Error> {
        let cli = parse(&["list", "-vvq", "--connect", "qemu:///system", "-d", "/o"])?;
        assert_eq!(cli.global.verbose, 2);
        assert_eq!(cli.global.quiet, 1);
        assert_eq!(cli.global.connect.as_deref(), Some("qemu:///system"));
        assert_eq!(cli.global.ocidir, PathBuf::from("/o"));
        Ok(())
    }

    #[test]
    fn export_defaults() -> Result<(), clap::Error> {
        let Command::Export(export) = parse(&["export", "vm"])?.command else {
            panic!("not export");
        };
        assert_eq!(export.container(), "vm");
        assert_eq!(export.disk_format(), DiskFormat::Chunked);
        assert_eq!(export.chunksize, None);
        Ok(())
    }

    #[test]
    fn export_sizes_and_legacy() -> Result<(), clap::Error> {
        let Command::Export(export) =
            parse(&["export", "vm", "img", "--chunksize", "1.5 GiB", "--legacy"])?.command
        else {
            panic!("not export");
        };
        assert_eq!(export.container(), "img");
        assert_eq!(export.chunksize, Some(1_610_612_736));
        assert_eq!(export.disk_format(), DiskFormat::Legacy);
        assert!(parse(&["export", "vm", "--legacy", "--disk-format", "chunked"]).is_err());
        assert!(parse(&["export", "vm", "--chunksize", "12 parsecs"]).is_err());
        Ok(())
    }

    #[test]
    fn raw_conflicts_with_ocidir() {
        assert!(parse(&["import", "--raw", "-d", "/o", "x"]).is_err());
        assert!(parse(&["import", "--raw", "x"]).is_ok());
    }

    #[test]
    fn logout_all() -> Result<(), clap::Error> {
        for args in [&["logout", "--all"][..], &["logout", "*"][..]] {
            let Command::Logout(logout) = parse(args)?.command else {
                panic!("not logout");
            };
            assert_eq!(logout.registry(), None);
        }
        let Command::Logout(logout) = parse(&["logout", "r.example"])?.command else {
            panic!("not logout");
        };
        assert_eq!(logout.registry(), Some("r.example"));
        assert!(parse(&["logout"]).is_err());
        assert!(parse(&["logout", "r.example", "--all"]).is_err());
        Ok(())
    }

    #[test]
    fn import_accepts_outdir_alias() -> Result<(), clap::Error> {
        let Command::Import(import) =
            parse(&["import", "x", "--outdir", "/vms", "--print-uuid"])?.command
        else {
            panic!("not import");
        };
        assert_eq!(import.import.vmdir.vmdir, PathBuf::from("/vms"));
        assert!(import.import.print_uuid);
        Ok(())
    }

    #[test]
    fn push_targets_repeat() -> Result<(), clap::Error> {
        let Command::Push(push) = parse(&[
            "push",
            "x",
            "-t",
            "a",
            "--target",
            "b",
            "--chunk-size",
            "4MiB",
        ])?
        .command
        else {
            panic!("not push");
        };
        assert_eq!(push.target, ["a", "b"]);
        assert_eq!(push.chunk_size, Some(4 << 20));
        assert_eq!(push.registry.concurrency, 8);
        Ok(())
    }

    #[test]
    fn ssh_command_follows_double_dash() -> Result<(), clap::Error> {
        let Command::Ssh(ssh) = parse(&["ssh", "vm", "-l", "root", "--", "ls", "-l"])?.command
        else {
            panic!("not ssh");
        };
        assert_eq!(ssh.user.as_deref(), Some("root"));
        assert_eq!(ssh.command, ["ls", "-l"]);
        Ok(())
    }

    #[test]
    fn durations_and_list_format() -> Result<(), clap::Error> {
        let Command::Prune(prune) =
            parse(&["prune", "--older-than", "30d", "--space-budget", "1G"])?.command
        else {
            panic!("not prune");
        };
        assert_eq!(prune.older_than, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(prune.space_budget, Some(1 << 30));
        let Command::List(list) = parse(&["list", "--format", "JSON"])?.command else {
            panic!("not list");
        };
        assert_eq!(list.format, OutputFormat::Json);
        Ok(())
    }

    #[test]
    fn passwords_are_not_debug_printed() -> Result<(), clap::Error> {
        let cli = parse(&["login", "r.example", "-u", "fish", "-p", "hunter2"])?;
        let printed = format!("{cli:?}");
        assert!(
            printed.contains("fish") && !printed.contains("hunter2"),
            "{printed}"
        );
        Ok(())
    }

    #[test]
    fn a_subcommand_is_required() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["-v"]).is_err());
    }
}
