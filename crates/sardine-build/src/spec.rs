//! What a build file describes, whatever its format: images, each a root image made from a
//! Debian suite or an image derived from a parent, with what to do to it.
//!
//! [`crate::yaml`] (sarde's own build file) and [`crate::lvh`] (little-vm-helper's
//! `images.json`, read verbatim) both produce a [`BuildFile`]; everything after parsing works
//! on these types only. They serialise to JSON for the cache key ([`crate::plan`]): a change to
//! any field of an image changes its key.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The images of one build file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildFile {
    /// The file it was read from (for messages).
    #[serde(skip)]
    pub path: PathBuf,
    /// The directory relative host paths (copied-in files) are relative to.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The images, in the file's order.
    pub images: Vec<ImageSpec>,
}

/// One image to build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSpec {
    /// Its name: the repository it is stored under (after `--tag`'s prefix) and its VM's name.
    pub name: String,
    /// Where its file system comes from.
    pub origin: Origin,
    /// The disk's virtual size (a root image's file system size; a derived image grows its
    /// parent's to this size).
    pub size: Option<u64>,
    /// Packages installed (by mmdebstrap for a root image, apt for a derived one).
    pub packages: Vec<String>,
    /// The guest's host name.
    pub hostname: Option<String>,
    /// Users to create.
    pub users: Vec<UserSpec>,
    /// What to do to the file system, offline, in order.
    pub actions: Vec<Action>,
    /// What to do in the booted image, over SSH, after the actions.
    pub steps: Vec<Step>,
    /// How the image's VM runs.
    pub vm: VmSpec,
}

/// Where an image's file system comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A new Debian system made by mmdebstrap.
    Debian(DebianRoot),
    /// A parent: another image of the same file if one has this name, else an image of the
    /// local store (or a registry, fetched when missing).
    Parent(String),
}

/// How mmdebstrap makes a root image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DebianRoot {
    /// The suite (`bookworm`, `sid`).
    pub suite: String,
    /// The mirror (`None`: mmdebstrap's choice, from the host's apt sources).
    pub mirror: Option<String>,
    /// mmdebstrap's `--variant` (`None`: its default, `debootstrap`).
    pub variant: Option<String>,
    /// The kernel package of a bootable image (`None`: not bootable: no kernel).
    pub kernel: Option<String>,
}

/// A user of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    /// The login name.
    pub name: String,
    /// Its password (`None`: locked).
    pub password: Option<String>,
    /// SSH public keys it accepts.
    pub ssh_keys: Vec<String>,
    /// Whether it may use sudo without a password (sudo is installed when asked for).
    pub sudo: bool,
}

/// How the image's VM runs: what its domain definition says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmSpec {
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// libvirt's domain type: `kvm`, or `qemu` (emulation, TCG) for hosts without KVM.
    pub domain_type: String,
    /// The libvirt network its interface is on.
    pub network: String,
    /// The kernel command line of a bootable Linux image.
    pub cmdline: String,
}

impl Default for VmSpec {
    fn default() -> VmSpec {
        VmSpec {
            memory_mib: 1024,
            cpus: 2,
            domain_type: "kvm".into(),
            network: "default".into(),
            cmdline: DEFAULT_CMDLINE.into(),
        }
    }
}

/// The kernel command line of built Linux images: the root file system is the whole first
/// disk (no partition table), the console the first serial port.
pub const DEFAULT_CMDLINE: &str = "root=/dev/vda rw console=ttyS0";

/// A change made to an image's file system offline (in a chroot of it, so that the image's own
/// symbolic links never lead outside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Action {
    /// Runs a shell command.
    RunCommand {
        /// The command (`/bin/sh -c`).
        cmd: String,
    },
    /// Copies a host file or directory (recursively) into a directory of the image.
    CopyIn {
        /// The host path.
        local: HostFile,
        /// The directory of the image.
        remote_dir: String,
    },
    /// Sets the host name (`/etc/hostname`, `/etc/hosts`).
    SetHostname {
        /// The name.
        hostname: String,
    },
    /// Makes a directory and its parents.
    Mkdir {
        /// The directory.
        dir: String,
    },
    /// Copies a host file to a path of the image.
    Upload {
        /// The host file.
        file: HostFile,
        /// The path in the image (a directory keeps the file's name).
        dest: String,
    },
    /// Changes a file's permissions.
    Chmod {
        /// Octal permissions (`0755`).
        mode: String,
        /// The file.
        file: String,
    },
    /// Appends a line to a file (made if missing), as virt-customize does.
    AppendLine {
        /// The file.
        file: String,
        /// The line.
        line: String,
    },
    /// Makes a symbolic link.
    Link {
        /// What it points to.
        target: String,
        /// The link.
        link: String,
    },
    /// Installs a kernel from a host directory holding `boot/` and `lib/modules/` (as
    /// little-vm-helper's kernels are), and links `/vmlinuz` to it.
    InstallKernel {
        /// The host directory.
        dir: HostFile,
    },
    /// Unpacks a host tar archive into a directory of the image.
    TarIn {
        /// The archive.
        tar: HostFile,
        /// The directory of the image.
        remote_dir: String,
    },
    /// Adds an SSH public key to a user's `authorized_keys`.
    SshInject {
        /// The user.
        user: String,
        /// The key (one line of an `.pub` file).
        key: String,
    },
    /// Sets a user's password.
    Password {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// Sets the time zone (`Europe/Vienna`).
    Timezone {
        /// The zone, as under `/usr/share/zoneinfo`.
        zone: String,
    },
    /// Runs a command once, at the first boot of each VM made from the image.
    Firstboot {
        /// The command (`/bin/sh -c`).
        cmd: String,
    },
    /// Installs packages with apt.
    Install {
        /// The packages.
        packages: Vec<String>,
    },
}

impl Action {
    /// The action's type as build files name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RunCommand { .. } => "run-command",
            Action::CopyIn { .. } => "copy-in",
            Action::SetHostname { .. } => "set-hostname",
            Action::Mkdir { .. } => "mkdir",
            Action::Upload { .. } => "upload",
            Action::Chmod { .. } => "chmod",
            Action::AppendLine { .. } => "append-line",
            Action::Link { .. } => "link",
            Action::InstallKernel { .. } => "install-kernel",
            Action::TarIn { .. } => "tar-in",
            Action::SshInject { .. } => "ssh-inject",
            Action::Password { .. } => "password",
            Action::Timezone { .. } => "timezone",
            Action::Firstboot { .. } => "firstboot",
            Action::Install { .. } => "install",
        }
    }

    /// The host files the action reads: their content is part of the image's cache key.
    pub fn host_files(&self) -> Vec<&HostFile> {
        match self {
            Action::CopyIn { local, .. } => vec![local],
            Action::Upload { file, .. } => vec![file],
            Action::InstallKernel { dir } => vec![dir],
            Action::TarIn { tar, .. } => vec![tar],
            _ => Vec::new(),
        }
    }
}

/// A path on the build host, as written and resolved against the build file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFile {
    /// As the build file says it (the cache key uses this and the content, not where the
    /// build file happens to be).
    pub written: String,
    /// Where it is.
    #[serde(skip)]
    pub path: PathBuf,
}

/// A step run in the booted image, over SSH as its first user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Step {
    /// Runs a command in the guest's shell; it must exit with 0.
    Ssh {
        /// The command.
        cmd: String,
    },
    /// Writes a host file to a path of the guest (with `cat` over SSH).
    SshUpload {
        /// The host file.
        file: HostFile,
        /// The path in the guest.
        dest: String,
    },
}

impl Step {
    /// The step's type as build files name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Ssh { .. } => "ssh",
            Step::SshUpload { .. } => "ssh-upload",
        }
    }
}

impl ImageSpec {
    /// The host files the image's actions and steps read: their content is part of its cache key.
    pub fn host_files(&self) -> Vec<&HostFile> {
        let mut files: Vec<&HostFile> = self.actions.iter().flat_map(Action::host_files).collect();
        files.extend(self.steps.iter().filter_map(|step| match step {
            Step::SshUpload { file, .. } => Some(file),
            Step::Ssh { .. } => None,
        }));
        files
    }

    /// Whether the image changes its file system offline (else only its steps change it).
    pub fn changes_offline(&self) -> bool {
        !self.actions.is_empty()
            || !self.users.is_empty()
            || self.hostname.is_some()
            || self.size.is_some()
    }
}

impl BuildFile {
    /// Sets every image's libvirt domain type and network where given (the command line's
    /// `--domain-type` and `--network`, for files that cannot say, such as lvh's).
    pub fn override_vm(&mut self, domain_type: Option<&str>, network: Option<&str>) {
        for image in &mut self.images {
            if let Some(kind) = domain_type {
                image.vm.domain_type = kind.to_owned();
            }
            if let Some(network) = network {
                image.vm.network = network.to_owned();
            }
        }
    }

    /// The image called `name`.
    pub fn image(&self, name: &str) -> Option<&ImageSpec> {
        self.images.iter().find(|image| image.name == name)
    }
}
