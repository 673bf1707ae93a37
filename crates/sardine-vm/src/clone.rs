//! `sarde clone`: a copy-on-write clone of a defined VM or of a local image.
//!
//! Every writable disk of the source becomes a qcow2 overlay on it in `<clonedir>/<target>/`;
//! cdroms are shared. The clone gets a new name, no UUID (libvirt makes one), new MACs and
//! its own copy of the NVRAM. Its domain XML lists the whole backing chain, which is how
//! `sarde rm` knows which VMs a base still serves.
//!
//! An ephemeral clone is a transient domain whose overlays are unlinked as soon as it runs:
//! when it stops, nothing of it remains.

use std::path::{Path, PathBuf};

use sardine_disk::qcow2::Format;
use sardine_libvirt::{BootFile, DiskDevice, DiskKind, DomainXml, Libvirt, Vm};
use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;

use crate::error::ImageError;
use crate::import::{ImportOptions, Imported, import};
use crate::progress::Progress;

/// What becomes of the clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneMode {
    /// Defined, not started.
    Define,
    /// Defined and started.
    Start,
    /// Transient and started; gone without a trace when it stops.
    Ephemeral,
}

/// Where the source comes from when it is an image rather than a VM.
pub struct ImageSource<'a> {
    /// The local store.
    pub store: &'a Store,
    /// Where imported base VMs go.
    pub vmdir: &'a Path,
    /// Worker threads for decompression.
    pub threads: usize,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
}

/// What to clone and how.
pub struct CloneOptions<'a> {
    /// A VM name or UUID, or an image reference of the local store.
    pub source: &'a str,
    /// The clone's name.
    pub target: &'a str,
    /// Where the clone's overlays go (in `<clonedir>/<target>/`).
    pub clonedir: &'a Path,
    /// libvirt URI.
    pub connect: Option<&'a str>,
    /// Define, start, or run ephemerally.
    pub mode: CloneMode,
    /// How to import the source if it is an image.
    pub image: Option<ImageSource<'a>>,
    /// Passed to the import of an image source.
    pub allow_unsafe_xml: bool,
    /// Override the memory (MiB).
    pub memory_mib: Option<u64>,
    /// Override the number of virtual CPUs.
    pub vcpus: Option<u32>,
    /// The most memory (MiB) the clone gets, whatever the source asks for.
    pub max_memory_mib: Option<u64>,
    /// The most virtual CPUs the clone gets, whatever the source asks for.
    pub max_vcpus: Option<u32>,
    /// The program the clone is made by and for (recorded in its metadata, see
    /// [`crate::remove::discard_vm`]); `None` for a VM of the user's.
    pub owner: Option<&'a str>,
    /// The network every interface of the clone is put on, whatever its source says; `None`
    /// keeps the source's interfaces.
    pub network: Option<Network<'a>>,
    /// Changes for one run: kernel, command line, shares, disks, console log.
    pub overrides: &'a Overrides,
}

/// Changes to a clone's definition that its user asks for (`sarde run`), applied after the
/// source's disks became overlays. Paths are made absolute and canonical (libvirtd does not
/// share the user's working directory); files that do not exist are refused.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// A kernel for direct kernel boot, instead of the image's.
    pub kernel: Option<PathBuf>,
    /// An initrd, instead of the image's.
    pub initrd: Option<PathBuf>,
    /// The kernel command line, instead of the image's.
    pub cmdline: Option<String>,
    /// Host directories shared into the guest.
    pub shares: Vec<Share>,
    /// Extra disks.
    pub disks: Vec<ExtraDisk>,
    /// Where the serial console's output goes.
    pub console_log: Option<PathBuf>,
}

/// A host directory shared into the guest (virtiofs, mount tag `tag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The host directory.
    pub source: PathBuf,
    /// The mount tag the guest mounts it by.
    pub tag: String,
    /// Whether the guest mounts it read-only (libvirt's virtiofs cannot enforce it).
    pub readonly: bool,
}

/// An extra disk: a file of the host (raw, or qcow2 by its header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDisk {
    /// The file.
    pub path: PathBuf,
    /// Whether the guest may only read it.
    pub readonly: bool,
}

impl Overrides {
    /// Applies the overrides to `domain`.
    pub fn apply(&self, domain: &mut DomainXml) -> Result<(), ImageError> {
        if let Some(kernel) = &self.kernel {
            domain.set_boot_file(BootFile::Kernel, Some(&existing(kernel)?));
        }
        if let Some(initrd) = &self.initrd {
            domain.set_boot_file(BootFile::Initrd, Some(&existing(initrd)?));
        }
        if let Some(cmdline) = &self.cmdline {
            domain.set_cmdline(cmdline);
        }
        for share in &self.shares {
            domain.add_host_share(&existing(&share.source)?, &share.tag);
        }
        for disk in &self.disks {
            let path = existing(&disk.path)?;
            let format = Format::of(sardine_disk::qcow2::read_header(Path::new(&path))?.as_ref());
            domain.add_disk_file(&path, format.as_str(), disk.readonly);
        }
        if let Some(log) = &self.console_log {
            let dir = log.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = crate::paths::canonical_dir(dir.unwrap_or(Path::new(".")))?;
            let name = log.file_name().ok_or_else(|| ImageError::Unsupported {
                what: format!("console log {}: not a file name", log.display()),
            })?;
            domain.set_console_log(&dir.join(name).to_string_lossy());
        }
        Ok(())
    }
}

/// `path`, absolute and canonical; it must exist.
fn existing(path: &Path) -> Result<String, ImageError> {
    Ok(fs_err::canonicalize(path)?.to_string_lossy().into_owned())
}

/// A libvirt network for a clone's interfaces, and the nwfilter on each of them.
#[derive(Debug, Clone, Copy)]
pub struct Network<'a> {
    /// The libvirt network's name.
    pub name: &'a str,
    /// An nwfilter such as `clean-traffic` (no MAC, IP or ARP spoofing), or none.
    pub filter: Option<&'a str>,
}

/// The clone.
#[derive(Debug, Clone)]
pub struct Cloned {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// The VM it is a clone of.
    pub base: String,
    /// Its directory (gone already for ephemeral clones).
    pub dir: PathBuf,
}

/// Makes a copy-on-write clone.
///
/// Clones of one name are serialised by a lock file in `clonedir` (one of at most 256, shared
/// by names with the same hash byte, so that a CI host cloning a new name per job does not
/// collect lock files). A clone directory without a VM of its name is what a clone that was
/// interrupted before it defined its VM left: it is replaced.
pub fn clone(options: &CloneOptions<'_>) -> Result<Cloned, ImageError> {
    crate::import::check_vm_name(options.target)?;
    let libvirt = Libvirt::open(options.connect)?;
    let clonedir = crate::paths::canonical_dir(options.clonedir)?;
    let _lock = sardine_oci::lock::lock_exclusive(&clone_lock_path(&clonedir, options.target))?;
    if libvirt.lookup(options.target)?.is_some() {
        return Err(ImageError::AlreadyExists {
            what: format!("VM {:?}", options.target),
        });
    }
    // An imported source stays safe from prune until the clone is defined.
    let (base, _imported) = source_vm(&libvirt, options)?;
    let base_name = base.name().to_owned();
    let mut domain = DomainXml::parse(&base.xml(true)?)?;
    let dir = clonedir.join(options.target);
    if dir.exists() {
        tracing::warn!(
            "replacing {}, left by a clone that never defined its VM",
            dir.display()
        );
        fs_err::remove_dir_all(&dir)?;
    }
    crate::paths::create_private_dir(&dir)?;
    let result = make_clone(&libvirt, &mut domain, &dir, options);
    match result {
        Ok(vm) => {
            if options.mode == CloneMode::Ephemeral {
                // The running domain holds the files open; nothing needs to outlive it.
                fs_err::remove_dir_all(&dir)?;
            }
            Ok(Cloned {
                name: options.target.to_owned(),
                uuid: vm.uuid().to_string(),
                base: base_name,
                dir,
            })
        }
        Err(e) => {
            // A VM of this name that appeared meanwhile (the define of an interrupted earlier
            // clone, still on its way through libvirtd) uses this directory's files: they stay.
            if !matches!(libvirt.lookup(options.target), Ok(Some(_))) {
                let _ = fs_err::remove_dir_all(&dir);
            }
            Err(e)
        }
    }
}

/// The VM to clone: a defined VM of that name, else the image of that reference (imported
/// first, once; then also the import, whose [`Imported::in_use`] keeps prune away).
fn source_vm(
    libvirt: &Libvirt,
    options: &CloneOptions<'_>,
) -> Result<(Vm, Option<Imported>), ImageError> {
    if let Some(vm) = libvirt.lookup(options.source)? {
        return Ok((vm, None));
    }
    let Some(image) = &options.image else {
        return Err(ImageError::VmNotFound {
            name: options.source.to_owned(),
        });
    };
    let reference = Reference::parse(options.source).map_err(|_| ImageError::VmNotFound {
        name: options.source.to_owned(),
    })?;
    let imported = import(&ImportOptions {
        store: image.store,
        reference: &reference,
        name: None,
        vmdir: image.vmdir,
        connect: options.connect,
        allow_unsafe_xml: options.allow_unsafe_xml,
        threads: image.threads,
        auto_prune: None,
        max_disk_size: crate::import::DEFAULT_MAX_DISK_SIZE,
        progress: image.progress,
    })?;
    let vm = crate::find_vm(libvirt, &imported.name)?;
    Ok((vm, Some(imported)))
}

/// The lock file for clones named `target` in `clonedir`: `.clone-<xx>.lock`, `xx` the first
/// byte of the name's sha256.
fn clone_lock_path(clonedir: &Path, target: &str) -> PathBuf {
    use sha2::Digest as _;
    let stripe = sha2::Sha256::digest(target.as_bytes())[0];
    clonedir.join(format!(".clone-{stripe:02x}.lock"))
}

/// Lowers memory and vCPUs to the limits of `options` (an image cannot take more of the host).
fn cap_resources(domain: &mut DomainXml, options: &CloneOptions<'_>) {
    if let Some(max) = options.max_memory_mib
        && domain.memory_mib().is_none_or(|mib| mib > max)
    {
        tracing::info!("{}: memory capped at {max} MiB", options.target);
        domain.set_memory_mib(max);
    }
    if let Some(max) = options.max_vcpus
        && domain.vcpus().is_none_or(|count| count > max)
    {
        tracing::info!("{}: virtual CPUs capped at {max}", options.target);
        domain.set_vcpus(max);
    }
}

fn make_clone(
    libvirt: &Libvirt,
    domain: &mut DomainXml,
    dir: &Path,
    options: &CloneOptions<'_>,
) -> Result<Vm, ImageError> {
    domain.set_name(options.target);
    domain.set_uuid(None);
    domain.randomize_macs();
    overlay_disks(domain, dir)?;
    copy_nvram(domain, dir)?;
    crate::paths::seal_files(dir)?;
    if let Some(parent) = dir.parent() {
        crate::paths::sync_dir(parent)?;
    }
    if let Some(memory) = options.memory_mib {
        domain.set_memory_mib(memory);
    }
    if let Some(vcpus) = options.vcpus {
        domain.set_vcpus(vcpus);
    }
    cap_resources(domain, options);
    options.overrides.apply(domain)?;
    if let Some(network) = options.network {
        domain.attach_interfaces(network.name, network.filter);
    }
    if let Some(owner) = options.owner {
        domain.set_owner(owner);
    }
    let xml = domain.to_xml()?;
    let vm = match options.mode {
        CloneMode::Define => libvirt.define(&xml)?,
        CloneMode::Start => {
            let vm = libvirt.define(&xml)?;
            if let Err(e) = vm.start() {
                let _ = vm.undefine();
                return Err(e.into());
            }
            vm
        }
        CloneMode::Ephemeral => libvirt.create_transient(&xml)?,
    };
    Ok(vm)
}

/// Replaces every writable file disk by a new overlay in `dir` whose backing file is the
/// source disk (by absolute path), and records the chain in the XML.
fn overlay_disks(domain: &mut DomainXml, dir: &Path) -> Result<(), ImageError> {
    let mut used = std::collections::HashSet::new();
    for disk in domain.disks() {
        let Some(source) = disk.source.clone() else {
            continue;
        };
        let target = disk
            .target
            .clone()
            .unwrap_or_else(|| format!("disk{}", disk.index));
        if disk.kind == DiskKind::File && !Path::new(&source).is_absolute() {
            // Defined so by sarde before 0.1 (relative --vmdir): libvirtd cannot open it either.
            return Err(ImageError::Unsupported {
                what: format!(
                    "disk {target} of the source VM has the relative path {source:?}, which \
                     libvirtd resolves against its own working directory; import the image again"
                ),
            });
        }
        if disk.device != DiskDevice::Disk || disk.readonly {
            continue;
        }
        if disk.kind != DiskKind::File {
            return Err(ImageError::Unsupported {
                what: format!(
                    "disk {target} is of type '{}': only file-backed disks can be cloned",
                    disk.kind.as_str()
                ),
            });
        }
        let source_path = PathBuf::from(&source);
        let chain = checked_chain(&source_path, disk.driver_type.as_deref(), &target)?;
        let mut name = source_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| target.clone());
        if !used.insert(name.clone()) {
            name = format!("{target}-{name}");
            used.insert(name.clone());
        }
        let overlay = dir.join(&name);
        sardine_disk::qcow2::create_overlay(&source, chain[0].1, &overlay)?;
        let chain: Vec<(String, String)> = chain
            .into_iter()
            .map(|(path, format)| (path, format.as_str().to_owned()))
            .collect();
        domain.set_disk_source(disk.index, &overlay.to_string_lossy());
        domain.set_disk_driver_type(disk.index, "qcow2");
        domain.set_backing_chain(disk.index, &chain);
    }
    Ok(())
}

/// The files QEMU opens for the source disk `path` of driver type `driver_type` (default raw),
/// each with its format, checked before `qemu-img` or QEMU opens any of them: only qcow2 and
/// raw, and for qcow2 the whole backing chain ([`sardine_disk::qcow2::backing_chain`]).
fn checked_chain(
    path: &Path,
    driver_type: Option<&str>,
    target: &str,
) -> Result<Vec<(String, Format)>, ImageError> {
    let declared = driver_type.unwrap_or("raw");
    let format = Format::parse(declared).ok_or_else(|| ImageError::Unsupported {
        what: format!(
            "disk {target} has the format '{declared}': only qcow2 and raw disks can be cloned"
        ),
    })?;
    let as_text = |path: &Path| path.to_string_lossy().into_owned();
    if format == Format::Raw {
        return Ok(vec![(as_text(path), format)]);
    }
    let chain = sardine_disk::qcow2::backing_chain(path)?;
    if chain[0].format != format {
        return Err(ImageError::Unsupported {
            what: format!(
                "disk {target} is declared qcow2, but {} is not a qcow2 image",
                path.display()
            ),
        });
    }
    Ok(chain
        .iter()
        .map(|element| (as_text(&element.path), element.format))
        .collect())
}

/// Gives the clone its own copy of the source's UEFI variable store.
fn copy_nvram(domain: &mut DomainXml, dir: &Path) -> Result<(), ImageError> {
    let Some(nvram) = domain.boot_files().nvram else {
        return Ok(());
    };
    let source = PathBuf::from(&nvram);
    if !source.is_file() {
        domain.set_boot_file(BootFile::Nvram, None);
        return Ok(());
    }
    let copy = dir.join(
        source
            .file_name()
            .unwrap_or(std::ffi::OsStr::new("nvram.fd")),
    );
    fs_err::copy(&source, &copy)?;
    domain.set_boot_file(BootFile::Nvram, Some(&copy.to_string_lossy()));
    Ok(())
}
