//! Fire-once VMs (`sarde run`, `sarde exec`): an image or VM started as a throwaway
//! copy-on-write clone, its own address, a login, and the clone thrown away afterwards.
//!
//! The pieces, in the order a run uses them: [`ensure_image`] (the pull policy, one fetch per
//! image at a time), [`launch`] (import once, clone with the run's [`Overrides`], start),
//! [`guest_address`] (the lease of the clone's own MACs, refused when another VM holds it),
//! [`login_of`] (the image's credentials under the user's), [`forward`] (ports from the
//! host) and [`discard`] (the clone and its files, whatever state it is in). The executor's
//! job VMs go through the same functions.

mod forward;
mod pull;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use sardine_libvirt::{AddressSource, DomainXml, Libvirt, Vm};
use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;

pub use forward::{Forward, forward};
pub use pull::{PullPolicy, ensure_image, fetch_lock_path};

use crate::clone::{CloneMode, CloneOptions, Cloned, ImageSource, Overrides};
use crate::error::ImageError;
use crate::progress::Progress;
use crate::store::LocalImage;
use crate::vmconfig::VmConfig;

/// The owner recorded in the clones of `sarde run`: only those are ever discarded by it.
pub const OWNER: &str = "sarde-run";

/// What to start and how.
pub struct Launch<'a> {
    /// An image reference of the local store, or a defined VM.
    pub source: &'a str,
    /// The clone's name.
    pub name: &'a str,
    /// The local store.
    pub store: &'a Store,
    /// Where the image's base VM goes when it is imported.
    pub vmdir: &'a Path,
    /// Where the clone's overlays go.
    pub clonedir: &'a Path,
    /// libvirt URI.
    pub connect: Option<&'a str>,
    /// A defined VM that outlives its run (else a transient one, gone when it stops).
    pub keep: bool,
    /// Virtual CPUs (default: the image's).
    pub cpus: Option<u32>,
    /// Memory in MiB (default: the image's).
    pub memory_mib: Option<u64>,
    /// Kernel, command line, shares, disks and console log for this run.
    pub overrides: &'a Overrides,
    /// Passed to the import of the image.
    pub allow_unsafe_xml: bool,
    /// Worker threads for decompression.
    pub threads: usize,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
}

/// Starts the clone (importing the image once, if it is one).
pub fn launch(launch: &Launch<'_>) -> Result<Cloned, ImageError> {
    crate::clone::clone(&CloneOptions {
        source: launch.source,
        target: launch.name,
        clonedir: launch.clonedir,
        connect: launch.connect,
        mode: if launch.keep {
            CloneMode::Start
        } else {
            CloneMode::Ephemeral
        },
        image: Some(ImageSource {
            store: launch.store,
            vmdir: launch.vmdir,
            threads: launch.threads,
            progress: launch.progress,
        }),
        allow_unsafe_xml: launch.allow_unsafe_xml,
        memory_mib: launch.memory_mib,
        vcpus: launch.cpus,
        max_memory_mib: None,
        max_vcpus: None,
        owner: Some(OWNER),
        network: None,
        overrides: launch.overrides,
    })
}

/// A name for a run's clone: `sarde-run-` and 8 random hex digits.
pub fn unique_name() -> String {
    let mut bytes = [0u8; 4];
    // A name only needs to differ from the others of this host; the time is a fine fallback.
    if fs_err::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        bytes = (nanos ^ std::process::id()).to_be_bytes();
    }
    format!("sarde-run-{}", hex::encode(bytes))
}

/// The address of the running VM `name` and its MACs, waiting up to `timeout` for one to
/// appear in one of `sources` (on the VM's own interfaces only). Fails when another running VM
/// holds the same address by lease or ARP: nobody can then tell which guest would answer.
pub fn guest_address(
    connect: Option<&str>,
    name: &str,
    timeout: Duration,
    sources: &[AddressSource],
) -> Result<(IpAddr, Vec<String>), ImageError> {
    let libvirt = Libvirt::open(connect)?;
    let vm = crate::find_vm(&libvirt, name)?;
    let address = vm.wait_for_address(timeout, sources)?;
    for source in [AddressSource::Lease, AddressSource::Arp] {
        let others = libvirt.holders_of(address, name, source)?;
        if !others.is_empty() {
            return Err(ImageError::AddressShared {
                vm: name.to_owned(),
                address,
                others,
                seen_in: source.as_str(),
            });
        }
    }
    Ok((address, vm.mac_addresses()?))
}

/// The sardine config of the image the VM `vm` was made from (recorded in its metadata, and
/// looked up in the store the metadata names, else in `store`); `None` when there is none.
pub fn image_config_of_vm(vm: &Vm, store: &Store) -> Option<VmConfig> {
    let domain = DomainXml::parse(&vm.xml(false).ok()?).ok()?;
    let Some(metadata) = domain.image_metadata() else {
        tracing::debug!("VM {} records no image it comes from", vm.name());
        return None;
    };
    let store = metadata.store.map_or_else(|| store.clone(), Store::new);
    let image = Reference::parse(&metadata.reference)
        .ok()
        .and_then(|reference| LocalImage::open(&store, &reference).ok());
    let Some(image) = image else {
        tracing::debug!(
            "image {} of VM {} is not in the store",
            metadata.reference,
            vm.name()
        );
        return None;
    };
    image.vmconfig().unwrap_or_else(|e| {
        tracing::warn!(
            "cannot read the sardine config of {}: {e}",
            metadata.reference
        );
        None
    })
}

/// Throws away a run's clone `name` and its directory in `clonedir`, whatever state it is in
/// (missing already is fine). Only clones that `sarde run` made are touched.
pub fn discard(connect: Option<&str>, clonedir: &Path, name: &str) -> Result<bool, ImageError> {
    let clonedir = crate::paths::canonical_dir(clonedir)?;
    crate::remove::discard_vm(connect, name, &clonedir, OWNER)
}
