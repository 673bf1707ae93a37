//! Errors of image operations, each saying what failed and on what.

use std::path::PathBuf;

use sardine_oci::credentials::CredentialsError;
use sardine_oci::layout::StoreError;
use sardine_oci::registry::RegistryError;
use sardine_oci::transfer::TransferError;

/// What can go wrong exporting, importing, cloning, listing, removing, fetching or pushing VM
/// images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image's manifest, config or layers are not what an image of a VM must be.
    #[error("malformed image: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// A file name from the image could escape the VM's directory.
    #[error(
        "the image names a file {name:?}, which is not a plain file name (letters, digits, '.', '_', '+' and '-', not starting with '.' or '-')"
    )]
    UnsafeFileName {
        /// The name (escaped).
        name: String,
    },
    /// No such image in the local store.
    #[error("image {reference} not found in {ocidir}")]
    ImageNotFound {
        /// The reference asked for.
        reference: String,
        /// The store searched.
        ocidir: PathBuf,
        /// Why it could not be read.
        #[source]
        source: Option<sardine_oci::layout::StoreError>,
    },
    /// A VM has the name of one that a program makes for itself, but that program did not
    /// make it (its metadata records another owner, or none).
    #[error("VM {name:?} was not made by {owner}{}", recorded.as_ref().map(|r| format!(" but by {r}")).unwrap_or_default())]
    NotOurs {
        /// The VM.
        name: String,
        /// The program that wanted to remove it.
        owner: String,
        /// The owner its metadata records.
        recorded: Option<String>,
    },
    /// Even pruning everything automatic pruning may remove would not free enough space.
    #[error("{} needs {needed} bytes, has {available} free and pruning could free only {freeable} more; nothing was removed", dir.display())]
    NoRoom {
        /// The directory that needs the space.
        dir: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free now.
        available: u64,
        /// Bytes pruning could free.
        freeable: u64,
    },
    /// A VM of the name an import would use exists, but sarde did not make it from this image.
    #[error("a VM named {name:?} exists that was not imported from this image (in this store)")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// No such VM in libvirt.
    #[error("VM {name:?} not found")]
    VmNotFound {
        /// Name or UUID asked for.
        name: String,
    },
    /// The VM is running and the operation needs it stopped.
    #[error("VM {name:?} is running")]
    VmRunning {
        /// Its name.
        name: String,
    },
    /// A VM or file to be created already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What.
        what: String,
    },
    /// Other VMs still use this one's disks.
    #[error("VM {name:?} is still used by {dependents:?}")]
    InUse {
        /// The VM.
        name: String,
        /// The VMs whose disks are overlays on it.
        dependents: Vec<String>,
    },
    /// A VM refers to files by relative paths, so sarde cannot tell which files to delete.
    #[error(
        "VM {name:?} refers to files by relative paths, which sarde cannot locate: {}; nothing was removed",
        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    UnlocatedFiles {
        /// The VM.
        name: String,
        /// The relative paths of its definition.
        files: Vec<PathBuf>,
    },
    /// A disk's backing chain cannot be exported as it is.
    #[error(
        "{image}: backing file {backing:?} must be a plain file name in the image's own directory"
    )]
    BackingChain {
        /// The overlay.
        image: PathBuf,
        /// Its backing file, as written in it.
        backing: String,
        /// Where the backing file really is.
        backing_path: PathBuf,
    },
    /// A backing file that an export would have to carry under a name that is not safe
    /// ([`sardine_disk::names`]): its overlays refer to it by that name.
    #[error(
        "{}: a backing file's name must consist of letters, digits, '.', '_', '+' and '-' and not start with '.' or '-' (QEMU reads other names as protocols or options)",
        path.display()
    )]
    UnsafeBackingName {
        /// The backing file.
        path: PathBuf,
    },
    /// Another running VM holds the address of a VM (by DHCP lease or ARP).
    #[error("the address {address} of VM {vm} is also held by {} ({}): two guests answer there", others.join(", "), seen_in)]
    AddressShared {
        /// The VM.
        vm: String,
        /// Its address.
        address: std::net::IpAddr,
        /// The other VMs.
        others: Vec<String>,
        /// Where they were seen holding it (`lease`, `arp`).
        seen_in: &'static str,
    },
    /// Something the VM uses that sarde cannot handle.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// The image's manifest would be larger than registries accept (found before any work).
    #[error(
        "cannot export {vm}: {} would be cut into {chunks} chunks of {chunk_size} bytes, which makes a manifest of up to {bytes} bytes, more than the {limit} bytes registries accept",
        file.display()
    )]
    ManifestTooLarge {
        /// The VM.
        vm: String,
        /// Its file with the most chunks.
        file: PathBuf,
        /// That file's chunks with data.
        chunks: u64,
        /// That file's chunk size.
        chunk_size: u64,
        /// The manifest's size, at most.
        bytes: u64,
        /// The limit.
        limit: u64,
        /// The smallest chunk size (for every file) that fits, if one up to the largest allowed does.
        fitting_chunk_size: Option<u64>,
    },
    /// The domain XML breaks the import policy.
    #[error("the image's domain XML is refused by the security policy:\n{violations}")]
    UnsafeDomain {
        /// One violation per line.
        violations: String,
    },
    /// A disk image of the image would make QEMU open a file outside the VM's directory.
    #[error("the image's disk file {file} is refused: {reason}")]
    UnsafeDiskFile {
        /// The file's plain name in the image.
        file: String,
        /// What it asks for.
        reason: String,
    },
    /// The sardine VM config does not follow its schema.
    #[error("VM config {origin}: {what}")]
    VmConfig {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        what: String,
    },
    /// Not enough free space.
    #[error("not enough free space in {path}: {needed} bytes needed, {available} available")]
    NoSpace {
        /// The directory.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The stored credentials for a registry cannot be read.
    #[error("cannot read the credentials for {registry}")]
    Credentials {
        /// The registry.
        registry: String,
        /// Why.
        #[source]
        source: sardine_oci::credentials::CredentialsError,
    },
    /// registries.conf cannot be read, or blocks the registry.
    #[error(transparent)]
    Registries(#[from] sardine_oci::registries::RegistriesError),
    /// No client for a registry can be made (an invalid registry name, a TLS setup failure).
    #[error(transparent)]
    Registry(#[from] sardine_oci::registry::RegistryError),
    /// A fetch or push failed.
    #[error(transparent)]
    Transfer(#[from] sardine_oci::transfer::TransferError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] sardine_oci::layout::StoreError),
    /// Packing or unpacking a file failed.
    #[error(transparent)]
    Disk(#[from] sardine_disk::DiskError),
    /// Domain XML handling failed.
    #[error(transparent)]
    Domain(#[from] sardine_libvirt::DomainError),
    /// libvirt failed.
    #[error(transparent)]
    Libvirt(#[from] sardine_libvirt::LibvirtError),
    /// A file operation failed (the error names the file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ImageError {
    /// What the user can do about it, when there is something (in words of no particular
    /// program: the binaries say it with their own flags where they have one).
    pub fn hint(&self) -> Option<String> {
        match self {
            ImageError::ImageNotFound { .. } => {
                Some("fetch it, or see the listing of the local images".into())
            }
            ImageError::VmRunning { name } => {
                Some(format!("shut it down first (`virsh shutdown '{name}'`)"))
            }
            ImageError::InUse { .. } => Some("remove those VMs first".into()),
            ImageError::AddressShared { .. } => Some(
                "are they clones of an image with a fixed /etc/machine-id or DHCP client id? Images must leave them empty (docs/gitlab-runner.md, \"Preparing images\")".into(),
            ),
            ImageError::NameTaken { .. } => Some("import under another name".into()),
            ImageError::NotOurs { name, .. } => Some(format!(
                "it is left alone; if it is garbage, remove it yourself (`virsh destroy '{name}'`)"
            )),
            ImageError::UnsafeDomain { .. } => {
                Some("only an image you trust may be imported without the policy".into())
            }
            ImageError::BackingChain {
                image,
                backing_path,
                ..
            } => Some(backing_hint(image, backing_path)),
            ImageError::UnsafeBackingName { .. } => Some(
                "copy it under such a name and point its overlays at the copy (`qemu-img rebase -u -F <format> -b <new name> <overlay>`)".into(),
            ),
            ImageError::NoSpace { .. } => {
                Some("free some space (prune the store) or choose another directory".into())
            }
            ImageError::ManifestTooLarge {
                fitting_chunk_size, ..
            } => Some(match fitting_chunk_size {
                Some(size) => format!("export with a chunk size of at least {} MiB", size >> 20),
                None => "no chunk size fits: export the VM with fewer or emptier disks (trimming a guest's free space turns it into holes, which cost nothing)".into(),
            }),
            ImageError::Credentials { source, .. } => source.hint().map(str::to_owned),
            ImageError::Registry(e) => e.hint().map(str::to_owned),
            ImageError::Registries(sardine_oci::registries::RegistriesError::Blocked { .. }) => {
                Some("the host's registries.conf blocks this registry; ask whoever manages it".into())
            }
            ImageError::Transfer(e) => e.hint().map(str::to_owned),
            ImageError::Store(e) => e.hint().map(str::to_owned),
            _ => None,
        }
    }
}

/// The hint of `error` if it is an error of this crate or of the crates below it that has one:
/// what the binaries look for along an error's chain of causes.
pub fn hint_of(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = error.downcast_ref::<ImageError>() {
        return e.hint();
    }
    let hint = if let Some(e) = error.downcast_ref::<StoreError>() {
        e.hint()
    } else if let Some(e) = error.downcast_ref::<RegistryError>() {
        e.hint()
    } else if let Some(e) = error.downcast_ref::<TransferError>() {
        e.hint()
    } else if let Some(e) = error.downcast_ref::<CredentialsError>() {
        e.hint()
    } else {
        None
    };
    hint.map(str::to_owned)
}

/// The commands that make a backing chain exportable: the backing file next to the overlay,
/// referred to by its plain name. A backing file elsewhere is *copied* (`cp -n` never
/// overwrites) under a name that is free in the overlay's directory, so the VM it belongs to
/// (for a clone: the base VM) keeps its disk.
fn backing_hint(image: &std::path::Path, backing_path: &std::path::Path) -> String {
    let image_dir = image.parent().unwrap_or(std::path::Path::new("/"));
    let name = backing_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if backing_path.parent() == Some(image_dir) {
        return format!("run: {}", rebase(image, &name));
    }
    let free = free_name(image_dir, &name);
    format!(
        "copy the backing file next to the overlay and point the overlay at the copy: cp -n --sparse=always '{}' '{}' && {}",
        backing_path.display(),
        image_dir.join(&free).display(),
        rebase(image, &free)
    )
}

fn rebase(image: &std::path::Path, backing_name: &str) -> String {
    format!(
        "qemu-img rebase -F qcow2 -u -b '{backing_name}' '{}'",
        image.display()
    )
}

/// `name`, or `base-<name>`, `base-2-<name>`, … : the first that no file in `dir` has.
fn free_name(dir: &std::path::Path, name: &str) -> String {
    std::iter::once(name.to_owned())
        .chain((1..).map(|n| match n {
            1 => format!("base-{name}"),
            n => format!("base-{n}-{name}"),
        }))
        .find(|candidate| !dir.join(candidate).exists())
        .unwrap_or_else(|| name.to_owned())
}

impl From<sardine_oci::InvalidDigest> for ImageError {
    fn from(err: sardine_oci::InvalidDigest) -> Self {
        ImageError::Malformed {
            what: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_come_from_the_error_that_has_one() {
        let missing = StoreError::BlobMissing {
            repo: "vm".into(),
            digest: sardine_oci::Digest::of(b"a"),
        };
        assert_eq!(hint_of(&missing).as_deref(), Some("fetch the image again"));
        let image = ImageError::Store(missing);
        assert_eq!(image.hint().as_deref(), Some("fetch the image again"));
        assert!(!image.to_string().contains("hint"), "{image}");
        assert_eq!(hint_of(&std::io::Error::other("x")), None);
    }

    #[test]
    fn a_manifest_too_large_names_the_file_and_hints_at_a_chunk_size() {
        let error = ImageError::ManifestTooLarge {
            vm: "big".into(),
            file: "/vms/big.raw".into(),
            chunks: 65_536,
            chunk_size: 16 << 20,
            bytes: 33_555_456,
            limit: 4 << 20,
            fitting_chunk_size: Some(128 << 20),
        };
        let message = error.to_string();
        assert!(
            message.contains("/vms/big.raw") && message.contains("65536 chunks"),
            "{message}"
        );
        assert!(!message.contains("hint"), "{message}");
        assert_eq!(
            error.hint().as_deref(),
            Some("export with a chunk size of at least 128 MiB")
        );
    }

    #[test]
    fn backing_hint_rebases_or_copies_under_a_free_name() {
        let same = backing_hint(
            std::path::Path::new("/vms/top.qcow2"),
            std::path::Path::new("/vms/base.qcow2"),
        );
        assert_eq!(
            same,
            "run: qemu-img rebase -F qcow2 -u -b 'base.qcow2' '/vms/top.qcow2'"
        );
        let other = backing_hint(
            std::path::Path::new("/nonexistent-dir/top.qcow2"),
            std::path::Path::new("/b/base.qcow2"),
        );
        assert!(
            other.contains("cp -n --sparse=always '/b/base.qcow2' '/nonexistent-dir/base.qcow2' && qemu-img rebase"),
            "{other}"
        );
        assert!(!other.contains("mv "), "{other}");
    }

    #[test]
    fn a_clone_s_own_disk_is_never_the_copy_target() {
        // A clone's overlay `disk.qcow2` on its base's `disk.qcow2`: the same name.
        let clone = tempfile::tempdir().unwrap();
        fs_err::write(clone.path().join("disk.qcow2"), b"overlay").unwrap();
        fs_err::write(clone.path().join("base-disk.qcow2"), b"taken").unwrap();
        let hint = backing_hint(
            &clone.path().join("disk.qcow2"),
            std::path::Path::new("/vms/base/disk.qcow2"),
        );
        let target = clone.path().join("base-2-disk.qcow2");
        assert!(
            hint.contains(&format!("'/vms/base/disk.qcow2' '{}'", target.display())),
            "{hint}"
        );
        assert!(hint.ends_with(&format!(
            "-b 'base-2-disk.qcow2' '{}'",
            clone.path().join("disk.qcow2").display()
        )));
    }
}
