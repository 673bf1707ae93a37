//! `sarde rm`: removing images from the local store and VMs from libvirt.
//!
//! Removing an image removes its tag (or, for a digest reference, its manifest) from the
//! repository index; its blobs stay until `sarde prune` collects what nothing references.
//! Removing a VM undefines it and deletes the directory sarde made for it — never files
//! elsewhere — and refuses while other VMs (clones) still use its disks.

use std::path::{Path, PathBuf};

use sardine_libvirt::{DiskDevice, DiskKind, DomainXml, Libvirt, LibvirtError};
use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;

use crate::error::ImageError;

/// Removes an image reference from the store; returns whether anything was removed.
pub fn remove_image(store: &Store, reference: &Reference) -> Result<bool, ImageError> {
    let repo = store.repo(reference.name())?;
    if !repo.exists() {
        return Ok(false);
    }
    if let Some(digest) = reference.digest() {
        return Ok(repo.remove_manifest(digest)?);
    }
    Ok(repo.remove_tag(reference.tag().unwrap_or("latest"))?)
}

/// What removing a VM did.
#[derive(Debug, Clone)]
pub struct RemovedVm {
    /// Its name.
    pub name: String,
    /// The directory deleted with it, if sarde had made one.
    pub dir: Option<PathBuf>,
    /// Clones removed with it (`force`).
    pub dependents: Vec<String>,
}

/// Undefines a VM (destroying it first if it runs and `force` is given) and deletes its
/// directory when that directory is the one sarde made for it (`<parent>/<name>/`).
pub fn remove_vm(connect: Option<&str>, name: &str, force: bool) -> Result<RemovedVm, ImageError> {
    let libvirt = Libvirt::open(connect)?;
    let vm = crate::find_vm(&libvirt, name)?;
    let vm_name = vm.name().to_owned();
    let domain = DomainXml::parse(&vm.xml(true)?)?;
    let (files, unlocated): (Vec<PathBuf>, Vec<PathBuf>) = owned_files(&domain)
        .into_iter()
        .partition(|p| p.is_absolute());
    if !unlocated.is_empty() {
        // libvirtd resolved them against its own working directory: sarde cannot know where
        // they are, and must not report a removal it did not do.
        if !force {
            return Err(ImageError::UnlocatedFiles {
                name: vm_name,
                files: unlocated,
            });
        }
        tracing::warn!(
            "VM {vm_name}: not deleting {}: relative paths, which sarde cannot locate",
            list_paths(&unlocated)
        );
    }
    let domain_disks = disk_files(&domain);
    let dependents = dependents(&libvirt, &vm_name, &files)?;
    if !dependents.is_empty() && !force {
        return Err(ImageError::InUse {
            name: vm_name,
            dependents,
        });
    }
    for dependent in &dependents {
        remove_vm(connect, dependent, true)?;
    }
    if !matches!(vm.state()?, sardine_libvirt::VmState::ShutOff) {
        if !force {
            return Err(ImageError::VmRunning { name: vm_name });
        }
        // A transient VM (an ephemeral clone) is gone once destroyed.
        gone_is_fine(vm.destroy())?;
    }
    let disks: Vec<PathBuf> = files
        .iter()
        .filter(|f| domain_disks.contains(f))
        .cloned()
        .collect();
    let dir = own_directory(&vm_name, &disks);
    if dir.is_none() && !files.is_empty() {
        tracing::info!(
            "VM {vm_name}: keeping {}: not in a directory sarde made for it",
            list_paths(&files)
        );
    }
    // The directory moves out of the way before the VM is undefined: killed after the move,
    // `rm` again finds the VM and the moved directory; killed after the undefine, the moved
    // directory is a leftover that `sarde prune` removes.
    let doomed = dir.as_deref().map(doomed_path);
    if let (Some(dir), Some(doomed)) = (&dir, &doomed)
        && dir.exists()
    {
        fs_err::rename(dir, doomed)?;
        // Freshly touched, so that prune does not take it for an old leftover meanwhile.
        fs_err::File::open(doomed)?.set_modified(std::time::SystemTime::now())?;
    }
    if gone_is_fine(vm.is_persistent())?.unwrap_or(false) {
        gone_is_fine(vm.undefine())?;
    }
    if let Some(doomed) = &doomed {
        match fs_err::remove_dir_all(doomed) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    tracing::info!("removed VM {vm_name}");
    Ok(RemovedVm {
        name: vm_name,
        dir,
        dependents,
    })
}

/// Throws away the VM `name` that `owner` made, and its directory `<dir>/<name>/` (the
/// executor's cleanup of a job's clone): [`remove_vm`] with `force`, except that a missing VM
/// is no error, and that the directory, or what an interrupted removal moved aside, goes also
/// when the VM is gone already. A VM of that name that `owner` did not make (its metadata
/// says so) is left alone: [`ImageError::NotOurs`]. Returns whether there was anything to remove.
pub fn discard_vm(
    connect: Option<&str>,
    name: &str,
    dir: &Path,
    owner: &str,
) -> Result<bool, ImageError> {
    check_owner(connect, name, owner)?;
    let vm = match remove_vm(connect, name, true) {
        Ok(_) => true,
        Err(ImageError::VmNotFound { .. }) => false,
        // It went away while it was being removed (a transient VM that shut down).
        Err(ImageError::Libvirt(e)) if e.is_no_domain() => true,
        Err(e) => return Err(e),
    };
    let dir = dir.join(name);
    let mut files = false;
    for path in [doomed_path(&dir), dir] {
        if fs_err::symlink_metadata(&path).is_ok() {
            fs_err::remove_dir_all(&path)?;
            tracing::info!("removed {}", path.display());
            files = true;
        }
    }
    Ok(vm || files)
}

/// Fails unless the VM `name` is missing or records `owner` as the program that made it.
fn check_owner(connect: Option<&str>, name: &str, owner: &str) -> Result<(), ImageError> {
    let libvirt = Libvirt::open(connect)?;
    let Some(vm) = libvirt.lookup(name)? else {
        return Ok(());
    };
    let Some(xml) = gone_is_fine(vm.xml(false))? else {
        return Ok(());
    };
    match DomainXml::parse(&xml)?.owner() {
        Some(recorded) if recorded == owner => Ok(()),
        recorded => Err(ImageError::NotOurs {
            name: name.to_owned(),
            owner: owner.to_owned(),
            recorded: recorded.map(str::to_owned),
        }),
    }
}

/// `Ok(None)` when libvirt says the domain is gone.
fn gone_is_fine<T>(result: Result<T, LibvirtError>) -> Result<Option<T>, LibvirtError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_no_domain() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The files of a VM: its disks (not cdroms, which may be shared), NVRAM, kernel, initrd.
fn owned_files(domain: &DomainXml) -> Vec<PathBuf> {
    let boot = domain.boot_files();
    let boot_files = [boot.kernel, boot.initrd, boot.nvram]
        .into_iter()
        .flatten()
        .map(PathBuf::from);
    disk_files(domain).into_iter().chain(boot_files).collect()
}

/// `a, b, c` for a log line.
fn list_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

/// The files of a VM's writable file disks.
pub(crate) fn disk_files(domain: &DomainXml) -> Vec<PathBuf> {
    domain
        .disks()
        .into_iter()
        .filter(|d| d.device == DiskDevice::Disk && d.kind == DiskKind::File)
        .filter_map(|d| d.source)
        .map(PathBuf::from)
        .collect()
}

/// The directory sarde made for the VM: `<..>/<name>/`, holding its writable disks. (Kernel
/// and initrd of a clone stay in its base's directory: they are the base's files.)
/// Where `remove_vm` moves a VM's directory before it deletes it: `<parent>/.<name>.removing`.
pub(crate) fn doomed_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!(".{name}.removing"))
}

pub(crate) fn own_directory(name: &str, disks: &[PathBuf]) -> Option<PathBuf> {
    let first = disks.first()?.parent()?;
    let all_inside = disks.iter().all(|f| f.parent() == Some(first));
    (all_inside && first.file_name()? == name).then(|| first.to_path_buf())
}

/// The other VMs whose disks have one of `files` in their backing chain.
fn dependents(libvirt: &Libvirt, name: &str, files: &[PathBuf]) -> Result<Vec<String>, ImageError> {
    let mut found = Vec::new();
    for vm in libvirt.list()? {
        let other = vm.name().to_owned();
        if other == name {
            continue;
        }
        // A VM that went away meanwhile (another job's ephemeral clone) uses nothing.
        let Some(xml) = gone_is_fine(vm.xml(false))? else {
            continue;
        };
        let Ok(domain) = DomainXml::parse(&xml) else {
            continue;
        };
        if uses_any(&domain, files) {
            found.push(other);
        }
    }
    Ok(found)
}

fn uses_any(domain: &DomainXml, files: &[PathBuf]) -> bool {
    domain
        .all_disk_files()
        .iter()
        .any(|used| files.iter().any(|f| Path::new(used) == f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_directory_only_when_named_after_the_vm_and_holding_all_disks() {
        let files = [
            PathBuf::from("/vms/a/disk.qcow2"),
            PathBuf::from("/vms/a/disk2.qcow2"),
        ];
        assert_eq!(own_directory("a", &files), Some(PathBuf::from("/vms/a")));
        assert_eq!(own_directory("b", &files), None);
        let scattered = [
            PathBuf::from("/vms/a/disk.qcow2"),
            PathBuf::from("/elsewhere/disk2.qcow2"),
        ];
        assert_eq!(own_directory("a", &scattered), None);
        assert_eq!(own_directory("a", &[]), None);
    }

    #[test]
    fn discarding_removes_the_directory_once_and_no_vm_is_nothing_to_do() {
        let connect = Some("test:///default");
        let clonedir = tempfile::tempdir().unwrap();
        let dir = clonedir.path().join("gitlab-5");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("data.qcow2"), "x").unwrap();
        fs_err::create_dir_all(clonedir.path().join("gitlab-6")).unwrap();
        let discard = |name: &str| discard_vm(connect, name, clonedir.path(), "test-owner");
        assert!(discard("gitlab-5").unwrap());
        assert!(!dir.exists());
        assert!(
            clonedir.path().join("gitlab-6").exists(),
            "other jobs' directories stay"
        );
        assert!(!discard("gitlab-5").unwrap());
        assert!(!discard("gitlab-does-not-exist").unwrap());
    }

    #[test]
    fn a_vm_of_someone_else_is_never_discarded() {
        let connect = Some("test:///default");
        let clonedir = tempfile::tempdir().unwrap();
        // The test driver's own domain "test" records no owner.
        let err = discard_vm(connect, "test", clonedir.path(), "test-owner").unwrap_err();
        assert!(matches!(err, ImageError::NotOurs { .. }), "{err}");
    }
}
