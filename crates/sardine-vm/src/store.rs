//! Reading the local store the way the image operations need it: an image of a VM
//! ([`LocalImage`]), the blobs of an image, the store's absolute path (as VMs record it), and
//! the free space of a file system.

use std::collections::HashMap;
use std::path::Path;

use sardine_oci::Digest;
use sardine_oci::layout::{Repo, Store};
use sardine_oci::reference::Reference;

use crate::error::ImageError;
use crate::format::{self, ImageLayers, Manifest};
use crate::vmconfig::VmConfig;

/// An image read from the store: its manifest, config digest and sorted-out layers.
pub struct LocalImage {
    /// The repository holding it.
    pub repo: Repo,
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// The image ID: the config blob's digest.
    id: Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// Its layers, sorted out.
    pub layers: ImageLayers,
}

impl LocalImage {
    /// Finds `reference` in the store and reads (and verifies) its manifest.
    pub fn open(store: &Store, reference: &Reference) -> Result<LocalImage, ImageError> {
        let not_found = |source| ImageError::ImageNotFound {
            reference: reference.to_string(),
            ocidir: store.root().to_path_buf(),
            source,
        };
        let repo = store
            .repo(reference.name())
            .map_err(|e| not_found(Some(e)))?;
        if !repo.exists() {
            return Err(not_found(None));
        }
        let descriptor = repo
            .resolve(reference.tag(), reference.digest())
            .map_err(|e| not_found(Some(e)))?;
        let manifest_digest = descriptor.valid_digest()?;
        let manifest = repo.read_manifest(&descriptor)?;
        format::check_manifest(&manifest)?;
        let id = manifest.config.valid_digest()?;
        let layers = ImageLayers::from_manifest(&manifest)?;
        Ok(LocalImage {
            repo,
            manifest_digest,
            id,
            manifest,
            layers,
        })
    }

    /// The image ID: the config blob's digest.
    pub fn id(&self) -> &Digest {
        &self.id
    }

    /// The sardine VM config, if the image has one.
    pub fn vmconfig(&self) -> Result<Option<VmConfig>, ImageError> {
        let Some(layer) = &self.layers.vmconfig else {
            return Ok(None);
        };
        let bytes = self
            .repo
            .read_blob(&layer.valid_digest()?, format::MAX_SMALL_BLOB)?;
        Ok(Some(VmConfig::parse(&bytes, &layer.digest)?))
    }

    /// The domain XML as stored in the image.
    pub fn domain_xml(&self) -> Result<String, ImageError> {
        let bytes = self
            .repo
            .read_blob(&self.layers.domain.valid_digest()?, format::MAX_SMALL_BLOB)?;
        String::from_utf8(bytes).map_err(|_| ImageError::Malformed {
            what: "the domain XML is not UTF-8".into(),
        })
    }
}

/// The blobs of the image `tag` or `digest` of the repository `name` (manifest, config,
/// layers) with their sizes as the manifest states them; `None` if the manifest cannot be read.
pub fn image_blobs(
    store: &Store,
    name: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Option<HashMap<Digest, u64>> {
    let repo = store.existing_repo(name).ok()?;
    let descriptor = repo.resolve(tag, digest).ok()?;
    let manifest = repo.read_manifest(&descriptor).ok()?;
    let mut blobs = HashMap::from([(descriptor.valid_digest().ok()?, descriptor.size)]);
    for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
        blobs.insert(desc.valid_digest().ok()?, desc.size);
    }
    Some(blobs)
}

/// The store's directory as an absolute path, as the VM metadata records it.
pub fn absolute_store(store: &Store) -> Option<String> {
    let path = fs_err::canonicalize(store.root()).ok()?;
    path.to_str().map(str::to_owned)
}

/// Free bytes for unprivileged writers on the filesystem holding `dir`.
pub fn available_space(dir: &Path) -> Result<u64, ImageError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
        ImageError::Unsupported {
            what: format!("{}: path contains NUL", dir.display()),
        }
    })?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_space_is_positive() {
        assert!(available_space(Path::new("/")).unwrap() > 0);
    }
}
