//! `sarde import`: an image of the local store becomes a defined libvirt VM.
//!
//! Order of work, so that a failure at any point leaves nothing half-done behind:
//! 1. read and verify the manifest, config and domain XML; check the domain against the
//!    security policy (`sardine_libvirt::sanitize`);
//! 2. check free space;
//! 3. unpack every file into `<vmdir>/.<name>.importing/`, verifying every blob and chunk;
//! 4. rename that directory to `<vmdir>/<name>/`;
//! 5. define the domain, pointing at those files. If defining fails, the directory goes.
//!
//! A lock per VM name serialises concurrent imports of one image: the second waits, then
//! finds the VM defined and returns at once.

use std::path::{Path, PathBuf};

use sardine_disk::chunked::{ChunkSource, unpack_file};
use sardine_libvirt::{BootFile, DomainXml, Libvirt, sanitize};
use sardine_oci::layout::{Repo, Store};
use sardine_oci::reference::Reference;

use crate::error::ImageError;
use crate::format::{self, FileRole, ImageFile, ImageLayers, Manifest};
use crate::progress::Progress;

/// What to import and how.
pub struct ImportOptions<'a> {
    /// The local store.
    pub store: &'a Store,
    /// The image.
    pub reference: &'a Reference,
    /// The VM's name (default: the image ID, `sha256:<hex>`, as sardinecake 0.4.2 names it).
    pub name: Option<&'a str>,
    /// Where VM directories go.
    pub vmdir: &'a Path,
    /// libvirt URI (`None`: libvirt's default).
    pub connect: Option<&'a str>,
    /// Define the domain XML even if the security policy refuses it.
    pub allow_unsafe_xml: bool,
    /// Worker threads for decompression.
    pub threads: usize,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
}

/// The imported VM.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// Whether it was there already.
    pub existed: bool,
    /// Its directory.
    pub dir: PathBuf,
}

/// An image read from the store: its manifest, config digest and sorted-out layers.
pub struct LocalImage {
    /// The repository holding it.
    pub repo: Repo,
    /// Manifest digest.
    pub manifest_digest: String,
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
        let repo = store.repo(reference.name()).map_err(|e| not_found(Some(e)))?;
        if !repo.exists() {
            return Err(not_found(None));
        }
        let descriptor = repo.resolve(reference.tag(), reference.digest()).map_err(|e| not_found(Some(e)))?;
        let manifest_digest = descriptor.digest.clone();
        let manifest = repo.read_manifest(&descriptor)?;
        format::check_manifest(&manifest)?;
        let layers = ImageLayers::from_manifest(&manifest)?;
        Ok(LocalImage { repo, manifest_digest, manifest, layers })
    }

    /// The image ID: the config blob's digest.
    pub fn id(&self) -> &str {
        &self.manifest.config.digest
    }

    /// The sardine VM config, if the image has one.
    pub fn vmconfig(&self) -> Result<Option<serde_json::Value>, ImageError> {
        let Some(layer) = &self.layers.vmconfig else { return Ok(None) };
        let bytes = self.repo.read_blob(&layer.digest, format::MAX_SMALL_BLOB)?;
        Ok(Some(crate::vmconfig::validate(&bytes, &layer.digest)?))
    }

    /// The domain XML as stored in the image.
    pub fn domain_xml(&self) -> Result<String, ImageError> {
        let bytes = self.repo.read_blob(&self.layers.domain.digest, format::MAX_SMALL_BLOB)?;
        String::from_utf8(bytes).map_err(|_| ImageError::Malformed { what: "the domain XML is not UTF-8".into() })
    }

    /// Bytes the unpacked files will occupy, holes excluded (all-zero chunks cost nothing).
    fn space_needed(&self) -> u64 {
        let mut zero_digests = std::collections::HashMap::new();
        let mut needed = 0u64;
        for file in &self.layers.files {
            match file {
                ImageFile::Chunked { chunks, .. } => {
                    for chunk in chunks {
                        let zero = zero_digests.entry(chunk.length).or_insert_with(|| zero_digest(chunk.length));
                        if *zero != chunk.digest {
                            needed = needed.saturating_add(chunk.length);
                        }
                    }
                }
                // Unknown before decompression: count the compressed size as a lower bound.
                ImageFile::Legacy { pieces, .. } => needed = needed.saturating_add(pieces.iter().map(|p| p.size).sum()),
            }
        }
        needed
    }
}

fn zero_digest(length: u64) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let block = vec![0u8; 1 << 20];
    let mut left = length;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Imports an image from the local store as a defined (not started) VM.
pub fn import(options: &ImportOptions<'_>) -> Result<Imported, ImageError> {
    let image = LocalImage::open(options.store, options.reference)?;
    let name = options.name.filter(|n| !n.is_empty()).unwrap_or(image.id()).to_owned();
    check_vm_name(&name)?;
    fs_err::create_dir_all(options.vmdir)?;
    let dir = options.vmdir.join(&name);
    let _lock = sardine_oci::lock::lock_exclusive(&options.vmdir.join(format!(".{name}.lock")))?;

    let libvirt = Libvirt::open(options.connect)?;
    if let Some(vm) = libvirt.lookup(&name)? {
        tracing::info!("VM {name} already exists");
        return Ok(Imported { name, uuid: vm.uuid().to_string(), existed: true, dir });
    }

    let mut domain = DomainXml::parse(&image.domain_xml()?)?;
    let has_legacy_files = image.layers.files.iter().any(|f| matches!(f, ImageFile::Legacy { .. }));
    if !has_legacy_files {
        // Refuse early, before unpacking anything.
        check_policy(&domain, &image.layers.chunked_names(), options.allow_unsafe_xml)?;
    }
    check_space(options.vmdir, image.space_needed())?;

    let staging = options.vmdir.join(format!(".{name}.importing"));
    if staging.exists() {
        tracing::info!("removing the leftovers of an interrupted import in {}", staging.display());
        fs_err::remove_dir_all(&staging)?;
    }
    fs_err::create_dir_all(&staging)?;
    let result = unpack_all(&image, &staging, options).and_then(|names| {
        let file_names: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
        check_policy(&domain, &file_names, options.allow_unsafe_xml)?;
        point_domain_at(&mut domain, &name, &dir, &names)?;
        domain.set_image_metadata(&options.reference.to_string(), image.id());
        if dir.exists() {
            tracing::warn!("replacing {}, left by an import that never defined its VM", dir.display());
            fs_err::remove_dir_all(&dir)?;
        }
        fs_err::rename(&staging, &dir)?;
        Ok(())
    });
    if let Err(e) = result {
        let _ = fs_err::remove_dir_all(&staging);
        return Err(e);
    }
    match libvirt.define(&domain.to_xml()?) {
        Ok(vm) => {
            tracing::info!("imported {} as VM {name}", options.reference);
            Ok(Imported { name, uuid: vm.uuid().to_string(), existed: false, dir })
        }
        Err(e) => {
            let _ = fs_err::remove_dir_all(&dir);
            Err(e.into())
        }
    }
}

/// A VM name must make a plain directory name too.
pub(crate) fn check_vm_name(name: &str) -> Result<(), ImageError> {
    format::plain_file_name(name).map(|_| ()).map_err(|_| ImageError::Unsupported {
        what: format!("{name:?} cannot be a VM name (no '/', no leading '.', no control characters)"),
    })
}

fn check_policy(domain: &DomainXml, image_files: &[String], allow_unsafe: bool) -> Result<(), ImageError> {
    let violations = sanitize::check(domain, image_files);
    if violations.is_empty() {
        return Ok(());
    }
    let text = violations.iter().map(|v| format!("  {}: {}", v.path, v.reason)).collect::<Vec<_>>().join("\n");
    if allow_unsafe {
        tracing::warn!("importing a domain the security policy refuses, because --allow-unsafe-xml was given:\n{text}");
        return Ok(());
    }
    Err(ImageError::UnsafeDomain { violations: text })
}

fn check_space(dir: &Path, needed: u64) -> Result<(), ImageError> {
    let available = available_space(dir)?;
    // Keep a margin: filesystems misbehave when completely full.
    let margin = 64 << 20;
    if needed.saturating_add(margin) > available {
        return Err(ImageError::NoSpace { path: dir.to_path_buf(), needed, available });
    }
    Ok(())
}

/// Free bytes for unprivileged writers on the filesystem holding `dir`.
pub fn available_space(dir: &Path) -> Result<u64, ImageError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| ImageError::Unsupported { what: format!("{}: path contains NUL", dir.display()) })?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Unpacks every file of the image into `staging`; returns (name, role) of each.
fn unpack_all(image: &LocalImage, staging: &Path, options: &ImportOptions<'_>) -> Result<Vec<(String, FileRole)>, ImageError> {
    let mut names = Vec::new();
    for file in &image.layers.files {
        match file {
            ImageFile::Chunked { name, role, size, chunks } => {
                let sources = chunks
                    .iter()
                    .map(|chunk| {
                        Ok(ChunkSource {
                            blob: image.repo.blob_path(&chunk.blob.digest)?,
                            blob_digest: chunk.blob.digest.clone(),
                            blob_size: chunk.blob.size,
                            offset: chunk.offset,
                            length: chunk.length,
                            digest: chunk.digest.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, ImageError>>()?;
                options.progress.start(&format!("importing {name}"), *size);
                let advance = |n: u64| options.progress.advance(n);
                unpack_file(&staging.join(name), *size, &sources, options.threads, &advance)?;
                options.progress.finish();
                names.push((name.clone(), *role));
            }
            ImageFile::Legacy { pieces, .. } => {
                let mut paths = Vec::new();
                for piece in pieces {
                    image.repo.verify_blob(&piece.digest)?;
                    paths.push(image.repo.blob_path(&piece.digest)?);
                }
                let fallback = format!("disk{}", names.len());
                let (name, _digest, _size) = sardine_disk::legacy::unpack_file(&paths, staging, &fallback)?;
                names.push((name, FileRole::Disk));
            }
        }
    }
    Ok(names)
}

/// Rewrites the domain for this host: its name, no UUID, new MACs, absolute file paths into
/// the VM's directory.
fn point_domain_at(domain: &mut DomainXml, name: &str, dir: &Path, files: &[(String, FileRole)]) -> Result<(), ImageError> {
    domain.set_name(name);
    domain.set_uuid(None);
    domain.randomize_macs();
    domain.remove_backing_stores();
    let known = |file: &str| files.iter().any(|(n, _)| n == file);
    for disk in domain.disks() {
        let Some(source) = disk.source.clone() else { continue };
        if known(&source) {
            domain.set_disk_source(disk.index, &dir.join(&source).to_string_lossy());
        } else {
            let target = disk.target.as_deref().unwrap_or("?");
            return Err(ImageError::Malformed { what: format!("disk {target} refers to {source:?}, which the image does not contain") });
        }
    }
    let boot = domain.boot_files();
    for (which, current) in [(BootFile::Kernel, boot.kernel), (BootFile::Initrd, boot.initrd), (BootFile::Nvram, boot.nvram)] {
        let Some(file) = current else { continue };
        if known(&file) {
            domain.set_boot_file(which, Some(&dir.join(&file).to_string_lossy()));
        } else if which == BootFile::Nvram {
            // No variable store in the image: libvirt makes one from its template.
            domain.set_boot_file(which, None);
        } else {
            return Err(ImageError::Malformed { what: format!("the domain boots {file:?}, which the image does not contain") });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_digest_matches_sha256_of_zeros() {
        use sha2::Digest;
        let expected = format!("sha256:{}", hex::encode(sha2::Sha256::digest(vec![0u8; 3 << 20 | 5])));
        assert_eq!(zero_digest(3 << 20 | 5), expected);
    }

    #[test]
    fn vm_names_must_be_plain() {
        assert!(check_vm_name("sha256:abc").is_ok());
        assert!(check_vm_name("../x").is_err());
        assert!(check_vm_name(".hidden").is_err());
    }

    #[test]
    fn available_space_is_positive() {
        assert!(available_space(Path::new("/")).unwrap() > 0);
    }
}
