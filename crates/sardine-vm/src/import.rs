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

use sardine_disk::chunked::{ChunkSource, unpack_file, unpack_sparse_file};
use sardine_libvirt::{BootFile, DomainXml, ImageMetadata, Libvirt, sanitize};
use sardine_oci::Digest;
use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;

use crate::error::ImageError;
use crate::format::{self, FileRole, ImageFile};
use crate::progress::Progress;
use crate::store::{LocalImage, absolute_store, available_space};

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
    /// When the VM directory's file system lacks the space the image needs plus this many
    /// bytes, prune least recently used images first ([`crate::prune::make_room`]); `None`:
    /// never prune.
    pub auto_prune: Option<u64>,
    /// The largest file a legacy (gzip) layer may unpack to: such streams declare no size (see
    /// [`sardine_disk::legacy::UnpackLimits`]).
    pub max_disk_size: u64,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
}

/// The default of [`ImportOptions::max_disk_size`]: 1 TiB.
pub const DEFAULT_MAX_DISK_SIZE: u64 = 1 << 40;

/// Space left free in the VM directory's file system by every import: file systems misbehave
/// when completely full.
const SPACE_MARGIN: u64 = 64 << 20;

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
    /// Keeps prune from removing the VM ([`crate::prune`]'s base VM lock) while this is alive:
    /// hold it until the VM's clones are defined.
    pub in_use: std::sync::Arc<sardine_oci::lock::LockGuard>,
}

impl LocalImage {
    /// The image config's `rootfs.diff_ids`: the uncompressed digests (empty when it has none).
    fn diff_ids(&self) -> Result<Vec<Digest>, ImageError> {
        let bytes = self.repo.read_blob(self.id(), format::MAX_SMALL_BLOB)?;
        let config: format::ImageConfig =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Malformed {
                what: format!(
                    "the image config {} is not an OCI image config: {e}",
                    self.id()
                ),
            })?;
        Ok(config
            .rootfs
            .map(|rootfs| rootfs.diff_ids)
            .unwrap_or_default())
    }

    /// Bytes the unpacked files will occupy, holes excluded (all-zero chunks cost nothing).
    fn space_needed(&self) -> u64 {
        let mut zero_digests = ZeroDigests::default();
        let mut needed = 0u64;
        for file in &self.layers.files {
            match file {
                // Version 2 lists no all-zero chunks; version 1 lists them all.
                ImageFile::Chunked { chunks, sparse, .. } => {
                    for chunk in chunks {
                        if *sparse || !zero_digests.is_zero(chunk.length, &chunk.digest) {
                            needed = needed.saturating_add(chunk.length);
                        }
                    }
                }
                // Unknown before decompression: count the compressed size as a lower bound.
                ImageFile::Legacy { pieces, .. } => {
                    needed = needed.saturating_add(pieces.iter().map(|p| p.size).sum())
                }
            }
        }
        needed
    }
}

/// The digests of all-zero chunks, for the few chunk lengths an image normally has (the chunk
/// size, and each file's last chunk). Computing one costs a pass over `length` zeros, so a
/// hostile manifest with many different lengths only gets [`ZeroDigests::MAX_LENGTHS`] of them;
/// the others count as data (overestimating the space needed, which is the safe side).
#[derive(Default)]
struct ZeroDigests {
    known: std::collections::HashMap<u64, String>,
}

impl ZeroDigests {
    const MAX_LENGTHS: usize = 16;

    /// Whether `digest` is that of `length` zero bytes.
    fn is_zero(&mut self, length: u64, digest: &str) -> bool {
        if !self.known.contains_key(&length) {
            if self.known.len() >= Self::MAX_LENGTHS
                || length > sardine_disk::chunked::MAX_CHUNK_SIZE
            {
                return false;
            }
            self.known.insert(length, zero_digest(length));
        }
        self.known.get(&length).is_some_and(|zero| zero == digest)
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
    // Importing (also for a clone of the image) counts as a use, even when the VM exists.
    options.store.mark_used(&image.manifest_digest);
    let explicit = options.name.filter(|n| !n.is_empty());
    check_vm_name(explicit.unwrap_or(image.id()))?;
    let mut domain = DomainXml::parse(&image.domain_xml()?)?;
    // Images written by sardinecake 0.4.2 carry the exporting host's live state (emulator
    // path, seclabels, pty paths, tap names, ...): that is removed; character devices that
    // reach the host are left for the policy below to refuse by name.
    // --allow-unsafe-xml promises the trusted image's definition unchanged, so it skips this.
    if !options.allow_unsafe_xml {
        domain.strip_host_state();
    }
    // Refuse early, before touching the VM directory or unpacking anything.
    check_policy(&domain, &file_names(&image)?, options.allow_unsafe_xml)?;
    check_bound_to_config(&image)?;

    // libvirtd resolves relative paths against its own working directory, not the user's:
    // every path the domain gets is absolute and canonical.
    let vmdir = crate::paths::canonical_dir(options.vmdir)?;
    let libvirt = Libvirt::open(options.connect)?;
    let store = absolute_store(options.store);
    let name = choose_name(&libvirt, &image, explicit, &store)?;
    let dir = vmdir.join(&name);
    let _lock = sardine_oci::lock::lock_exclusive(&vmdir.join(format!(".{name}.lock")))?;

    let mut in_use = crate::prune::use_base_vms(options.store)?;
    if let Some(vm) = libvirt.lookup(&name)? {
        if !made_from(&vm, &image, &store)? {
            // Another import took the name meanwhile.
            return Err(ImageError::NameTaken { name });
        }
        let missing = missing_files(&vm)?;
        if missing.is_empty() {
            tracing::info!("VM {name} already exists");
            return Ok(Imported {
                name,
                uuid: vm.uuid().to_string(),
                existed: true,
                dir,
                in_use,
            });
        }
        tracing::warn!(
            "VM {name} is defined, but its files {} are missing (an import cut short by a crash?): importing it again",
            missing.join(", ")
        );
        vm.undefine()?;
    }
    let needed = image.space_needed();
    if let Some(keep_free) = options.auto_prune {
        // Pruning may remove base VMs; nothing of this one exists yet.
        drop(in_use);
        crate::prune::make_room_and_log(&crate::prune::RoomRequest {
            store: options.store,
            connect: options.connect,
            dir: &vmdir,
            needed,
            keep_free,
            keep: &image.manifest_digest,
        })?;
        in_use = crate::prune::use_base_vms(options.store)?;
    }
    check_space(&vmdir, needed)?;

    let staging = vmdir.join(format!(".{name}.importing"));
    if staging.exists() {
        tracing::info!(
            "removing the leftovers of an interrupted import in {}",
            staging.display()
        );
        fs_err::remove_dir_all(&staging)?;
    }
    crate::paths::create_private_dir(&staging)?;
    let result = unpack_all(&image, &staging, options).and_then(|names| {
        let file_names: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
        check_disk_files(&staging, &file_names)?;
        point_domain_at(&mut domain, &name, &dir, &names, options.allow_unsafe_xml)?;
        domain.clear_owner();
        domain.set_image_metadata(&ImageMetadata {
            reference: options.reference.to_string(),
            id: image.id().to_string(),
            store: store.clone(),
            manifest: Some(image.manifest_digest.to_string()),
        });
        if dir.exists() {
            tracing::warn!(
                "replacing {}, left by an import that never defined its VM",
                dir.display()
            );
            fs_err::remove_dir_all(&dir)?;
        }
        // Durable before the domain that names them is: a power cut never leaves libvirt
        // pointing at files that are not there.
        crate::paths::seal_files(&staging)?;
        fs_err::rename(&staging, &dir)?;
        crate::paths::sync_dir(&vmdir)?;
        Ok(())
    });
    if let Err(e) = result {
        let _ = fs_err::remove_dir_all(&staging);
        return Err(e);
    }
    match libvirt.define(&domain.to_xml()?) {
        Ok(vm) => {
            tracing::info!("imported {} as VM {name}", options.reference);
            Ok(Imported {
                name,
                uuid: vm.uuid().to_string(),
                existed: false,
                dir,
                in_use,
            })
        }
        Err(e) => {
            let _ = fs_err::remove_dir_all(&dir);
            Err(e.into())
        }
    }
}

/// The files of `vm` (disks, backing files, kernel, initrd) that do not exist, if it is a VM
/// imported from the image `image_id`; a VM that sarde did not import from it is left alone.
/// (The NVRAM is not counted: libvirt makes it from its template when it has none.)
/// Checks that the config (whose digest is the image ID, which names base VMs) vouches for the
/// layers of an image in sarde's format: the domain XML, the sardine config and every chunk's
/// uncompressed digest must be among its `rootfs.diff_ids`, which sarde's export writes. An
/// image that reuses another image's config with layers of its own is refused. (Legacy images
/// are checked file by file after unpacking, [`check_legacy_diff_id`].)
fn check_bound_to_config(image: &LocalImage) -> Result<(), ImageError> {
    let mut claims: Vec<(String, Digest)> = Vec::new();
    for file in &image.layers.files {
        if let ImageFile::Chunked { name, chunks, .. } = file {
            claims.extend(chunks.iter().map(|chunk| {
                let what = format!("the chunk at offset {} of {name}", chunk.offset);
                (what, chunk.digest.clone())
            }));
        }
    }
    if claims.is_empty() {
        return Ok(());
    }
    claims.push(("the domain XML".into(), image.layers.domain.valid_digest()?));
    if let Some(vmconfig) = &image.layers.vmconfig {
        claims.push(("the sardine config".into(), vmconfig.valid_digest()?));
    }
    let diff_ids: std::collections::HashSet<Digest> = image.diff_ids()?.into_iter().collect();
    match claims
        .into_iter()
        .find(|(_, digest)| !diff_ids.contains(digest))
    {
        None => Ok(()),
        Some((what, digest)) => Err(ImageError::Malformed {
            what: format!(
                "{what} has content digest {digest}, which is not among the diff_ids of the image config {} (an image that borrows another image's config?)",
                image.id()
            ),
        }),
    }
}

/// The name of the base VM: the one asked for, else the image ID. A VM of that name that
/// sarde did not make from this very manifest in this store is never reused because of its
/// name: an explicit name is then refused, and the image ID gives way to
/// `<image ID>-<12 hex digits of the manifest digest>` (two images may share a config blob).
fn choose_name(
    libvirt: &Libvirt,
    image: &LocalImage,
    explicit: Option<&str>,
    store: &Option<String>,
) -> Result<String, ImageError> {
    let primary = explicit.unwrap_or(image.id()).to_owned();
    let taken = |name: &str| -> Result<bool, ImageError> {
        match libvirt.lookup(name)? {
            Some(vm) => Ok(!made_from(&vm, image, store)?),
            None => Ok(false),
        }
    };
    if !taken(&primary)? {
        return Ok(primary);
    }
    if explicit.is_some() {
        return Err(ImageError::NameTaken { name: primary });
    }
    let alternative = format!("{primary}-{}", &image.manifest_digest.hex()[..12]);
    tracing::warn!(
        "VM {primary} exists but was not imported from {} in this store: importing as {alternative}",
        image.manifest_digest
    );
    if taken(&alternative)? {
        return Err(ImageError::NameTaken { name: alternative });
    }
    Ok(alternative)
}

/// Whether `vm` is the one sarde imported from `image`'s manifest into `store`.
fn made_from(
    vm: &sardine_libvirt::Vm,
    image: &LocalImage,
    store: &Option<String>,
) -> Result<bool, ImageError> {
    let domain = DomainXml::parse(&vm.xml(true)?)?;
    Ok(domain.image_metadata().is_some_and(|recorded| {
        recorded.id == image.id().as_str()
            && recorded.manifest.as_deref() == Some(image.manifest_digest.as_str())
            && recorded.store == *store
    }))
}

/// The files of `vm` (an import of this image) that are gone.
fn missing_files(vm: &sardine_libvirt::Vm) -> Result<Vec<String>, ImageError> {
    let domain = DomainXml::parse(&vm.xml(true)?)?;
    let boot = domain.boot_files();
    let files = domain
        .all_disk_files()
        .into_iter()
        .chain([boot.kernel, boot.initrd].into_iter().flatten());
    Ok(files.filter(|file| !Path::new(file).exists()).collect())
}

/// A VM name must make a plain directory name too: not empty, no `/`, not starting with `.`,
/// no control characters, at most 255 bytes. (It may contain `:`, as image IDs do: QEMU sees
/// it only inside absolute paths, where a `:` is no protocol.)
pub(crate) fn check_vm_name(name: &str) -> Result<(), ImageError> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(char::is_control);
    plain.then_some(()).ok_or_else(|| ImageError::Unsupported {
        what: format!(
            "{name:?} cannot be a VM name (no '/', no leading '.', no control characters)"
        ),
    })
}

fn check_policy(
    domain: &DomainXml,
    image_files: &[String],
    allow_unsafe: bool,
) -> Result<(), ImageError> {
    let violations = sanitize::check(domain, image_files);
    if violations.is_empty() {
        return Ok(());
    }
    let text = violations
        .iter()
        .map(|v| format!("  {}: {}", v.path, v.reason))
        .collect::<Vec<_>>()
        .join("\n");
    if allow_unsafe {
        tracing::warn!(
            "importing a domain the security policy refuses, because --allow-unsafe-xml was given:\n{text}"
        );
        return Ok(());
    }
    Err(ImageError::UnsafeDomain { violations: text })
}

fn check_space(dir: &Path, needed: u64) -> Result<(), ImageError> {
    let available = available_space(dir)?;
    if needed.saturating_add(SPACE_MARGIN) > available {
        return Err(ImageError::NoSpace {
            path: dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Unpacks every file of the image into `staging`; returns (name, role) of each.
fn unpack_all(
    image: &LocalImage,
    staging: &Path,
    options: &ImportOptions<'_>,
) -> Result<Vec<(String, FileRole)>, ImageError> {
    let mut names = Vec::new();
    let has_legacy_files = image
        .layers
        .files
        .iter()
        .any(|f| matches!(f, ImageFile::Legacy { .. }));
    let diff_ids = if has_legacy_files {
        image.diff_ids()?
    } else {
        Vec::new()
    };
    for file in &image.layers.files {
        match file {
            ImageFile::Chunked {
                name,
                role,
                size,
                chunks,
                sparse,
            } => {
                let sources = chunks
                    .iter()
                    .map(|chunk| {
                        let blob_digest = chunk.blob.valid_digest()?;
                        Ok(ChunkSource {
                            blob: image.repo.blob_path(&blob_digest),
                            blob_digest,
                            blob_size: chunk.blob.size,
                            offset: chunk.offset,
                            length: chunk.length,
                            digest: chunk.digest.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, ImageError>>()?;
                options.progress.start(&format!("importing {name}"), *size);
                let advance = |n: u64| options.progress.advance(n);
                let unpack = if *sparse {
                    unpack_sparse_file
                } else {
                    unpack_file
                };
                unpack(
                    &staging.join(name),
                    *size,
                    &sources,
                    options.threads,
                    &advance,
                )?;
                options.progress.finish();
                names.push((name.clone(), *role));
            }
            ImageFile::Legacy { pieces, .. } => {
                let mut paths = Vec::new();
                for piece in pieces {
                    let digest = piece.valid_digest()?;
                    image.repo.verify_blob(&digest)?;
                    paths.push(image.repo.blob_path(&digest));
                }
                let limits = sardine_disk::legacy::UnpackLimits {
                    max_size: options.max_disk_size,
                    max_written: legacy_space(staging, options)?,
                };
                let (name, digest, _size) = sardine_disk::legacy::unpack_file(
                    &paths,
                    staging,
                    &legacy_fallback_name(names.len()),
                    &limits,
                )?;
                check_legacy_diff_id(&name, &digest, &diff_ids)?;
                names.push((name, FileRole::Disk));
            }
        }
    }
    Ok(names)
}

/// The names of the image's files: titles of chunked files, gzip FNAMEs of legacy ones (read
/// from their headers, before anything is unpacked).
fn file_names(image: &LocalImage) -> Result<Vec<String>, ImageError> {
    let mut names = Vec::new();
    for (index, file) in image.layers.files.iter().enumerate() {
        let name = match file {
            ImageFile::Chunked { name, .. } => name.clone(),
            ImageFile::Legacy { pieces, .. } => {
                let paths = pieces
                    .iter()
                    .map(|piece| Ok(image.repo.blob_path(&piece.valid_digest()?)))
                    .collect::<Result<Vec<_>, ImageError>>()?;
                sardine_disk::legacy::file_name(&paths, &legacy_fallback_name(index))?
            }
        };
        names.push(name);
    }
    Ok(names)
}

/// The name of the `index`th file of an image if it is a legacy file without FNAME.
fn legacy_fallback_name(index: usize) -> String {
    format!("disk{index}")
}

/// The space a legacy file may take in `staging`: what is free, less the margin and (with
/// auto-prune) what must stay free.
fn legacy_space(staging: &Path, options: &ImportOptions<'_>) -> Result<u64, ImageError> {
    let reserved = SPACE_MARGIN.saturating_add(options.auto_prune.unwrap_or(0));
    Ok(available_space(staging)?.saturating_sub(reserved))
}

/// A legacy file's pieces are verified blob by blob, but only the config's diff_ids (which 0.4.2
/// and sarde both write: the SHA-256 of each whole uncompressed file) vouch for the file
/// they make up together (pieces could be reordered or swapped between images).
fn check_legacy_diff_id(
    name: &str,
    digest: &Digest,
    diff_ids: &[Digest],
) -> Result<(), ImageError> {
    if diff_ids.iter().any(|d| d == digest) {
        return Ok(());
    }
    Err(ImageError::Malformed {
        what: format!(
            "{name} unpacks to {digest}, which is not among the image config's diff_ids (corrupt or tampered image)"
        ),
    })
}

/// Checks the qcow2 headers of the unpacked files, so that QEMU (and libvirt, which relabels
/// every file of a chain) opens nothing but the image's own files, each as what it is: a backing
/// file must be another file of the image, named safely ([`sardine_disk::names`]), of the format
/// the overlay declares ([`sardine_disk::qcow2::check_backing_format`]), chains must not loop,
/// and no image may use an external data file or a format other than qcow2 or raw.
/// Otherwise QEMU would open a host file or a network connection the image chose, such as
/// `/etc/shadow`, `/dev/sda` or `nbd:127.0.0.1:10809`.
fn check_disk_files(staging: &Path, names: &[String]) -> Result<(), ImageError> {
    use sardine_disk::qcow2;
    let mut headers = std::collections::HashMap::new();
    for name in names {
        headers.insert(name.as_str(), qcow2::read_header(&staging.join(name))?);
    }
    let mut backing_of = std::collections::HashMap::new();
    for name in names {
        let refuse = |reason: String| ImageError::UnsafeDiskFile {
            file: name.clone(),
            reason,
        };
        let Some(header) = &headers[name.as_str()] else {
            continue;
        };
        let Some(link) = header.backing_link().map_err(refuse)? else {
            continue;
        };
        let Some(backing) = headers
            .get(link.name.as_str())
            .filter(|_| sardine_disk::names::is_safe_file_name(&link.name) && link.name != *name)
        else {
            return Err(refuse(format!(
                "its qcow2 header names the backing file \"{}\", which is not another file of the image",
                link.name.escape_debug()
            )));
        };
        qcow2::check_backing_format(&link, backing.as_ref()).map_err(refuse)?;
        backing_of.insert(name.as_str(), link.name);
    }
    check_no_loops(&backing_of, names.len())
}

/// Refuses backing chains (image name to backing file name) that loop.
fn check_no_loops(
    backing_of: &std::collections::HashMap<&str, String>,
    files: usize,
) -> Result<(), ImageError> {
    for start in backing_of.keys() {
        let mut current = *start;
        for _ in 0..=files {
            match backing_of.get(current) {
                Some(next) => current = next,
                None => break,
            }
        }
        if backing_of.contains_key(current) {
            return Err(ImageError::UnsafeDiskFile {
                file: (*start).to_owned(),
                reason: "its backing chain loops".into(),
            });
        }
    }
    Ok(())
}

/// Rewrites the domain for this host: its name, no UUID, new MACs, absolute file paths into
/// the VM's directory.
///
/// A file the image does not contain is an error, except, with `allow_unsafe`, an absolute
/// path, which stays as it is: sardinecake 0.4.2 exports disks only, so the kernel and initrd
/// of a direct-kernel-boot VM it exported are the exporting host's files (the policy check
/// already named them).
fn point_domain_at(
    domain: &mut DomainXml,
    name: &str,
    dir: &Path,
    files: &[(String, FileRole)],
    allow_unsafe: bool,
) -> Result<(), ImageError> {
    domain.set_name(name);
    domain.set_uuid(None);
    domain.randomize_macs();
    domain.remove_backing_stores();
    let known = |file: &str| files.iter().any(|(n, _)| n == file);
    let kept_host_path = |file: &str| allow_unsafe && Path::new(file).is_absolute();
    for disk in domain.disks() {
        let Some(source) = disk.source.clone() else {
            continue;
        };
        if known(&source) {
            domain.set_disk_source(disk.index, &dir.join(&source).to_string_lossy());
        } else if !kept_host_path(&source) {
            let target = disk.target.as_deref().unwrap_or("?");
            return Err(ImageError::Malformed {
                what: format!(
                    "disk {target} refers to {source:?}, which the image does not contain"
                ),
            });
        }
    }
    let boot = domain.boot_files();
    for (which, current) in [
        (BootFile::Kernel, boot.kernel),
        (BootFile::Initrd, boot.initrd),
        (BootFile::Nvram, boot.nvram),
    ] {
        let Some(file) = current else { continue };
        if known(&file) {
            domain.set_boot_file(which, Some(&dir.join(&file).to_string_lossy()));
        } else if which == BootFile::Nvram {
            // No variable store in the image: libvirt makes one from its template.
            domain.set_boot_file(which, None);
        } else if !kept_host_path(&file) {
            return Err(ImageError::Malformed {
                what: format!("the domain boots {file:?}, which the image does not contain"),
            });
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
        let expected = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(vec![0u8; 3 << 20 | 5]))
        );
        assert_eq!(zero_digest(3 << 20 | 5), expected);
    }

    #[test]
    fn legacy_files_must_match_a_diff_id() {
        let [aa, bb, cc] = [b"aa", b"bb", b"cc"].map(|bytes| Digest::of(bytes));
        let ids = [aa.clone(), bb.clone()];
        assert!(check_legacy_diff_id("disk.qcow2", &bb, &ids).is_ok());
        let err = check_legacy_diff_id("disk.qcow2", &cc, &ids).unwrap_err();
        assert!(err.to_string().contains("disk.qcow2"), "{err}");
        assert!(check_legacy_diff_id("disk.qcow2", &aa, &[]).is_err());
    }

    #[test]
    fn vm_names_must_be_plain() {
        assert!(check_vm_name("sha256:abc").is_ok());
        assert!(check_vm_name("../x").is_err());
        assert!(check_vm_name(".hidden").is_err());
    }

    /// A minimal qcow2 version 3 header, with a backing file name and a data file extension
    /// when given.
    fn qcow2(backing: Option<&str>, data_file: Option<&str>) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(&sardine_disk::qcow2::MAGIC);
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        let mut pos = 112;
        if let Some(name) = data_file {
            h[72..80].copy_from_slice(&4u64.to_be_bytes());
            h[pos..pos + 4].copy_from_slice(&0x4441_5441u32.to_be_bytes());
            h[pos + 4..pos + 8].copy_from_slice(&(name.len() as u32).to_be_bytes());
            h[pos + 8..pos + 8 + name.len()].copy_from_slice(name.as_bytes());
            pos += 8 + name.len().next_multiple_of(8);
        }
        pos += 8;
        if let Some(name) = backing {
            h[8..16].copy_from_slice(&(pos as u64).to_be_bytes());
            h[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
            h[pos..pos + name.len()].copy_from_slice(name.as_bytes());
        }
        h
    }

    fn disk_files(files: &[(&str, Vec<u8>)]) -> Result<(), ImageError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            fs_err::write(dir.path().join(name), bytes).unwrap();
        }
        let names: Vec<String> = files.iter().map(|(n, _)| (*n).to_owned()).collect();
        check_disk_files(dir.path(), &names)
    }

    #[test]
    fn disk_files_may_only_back_onto_each_other() {
        disk_files(&[
            ("base.qcow2", qcow2(None, None)),
            ("top.qcow2", qcow2(Some("base.qcow2"), None)),
            ("raw", vec![1; 10]),
        ])
        .unwrap();
        for backing in [
            "/etc/shadow",
            "/dev/sda",
            "../base.qcow2",
            "missing.qcow2",
            "top.qcow2",
        ] {
            let err = disk_files(&[
                ("base.qcow2", qcow2(None, None)),
                ("top.qcow2", qcow2(Some(backing), None)),
            ])
            .unwrap_err();
            assert!(
                matches!(err, ImageError::UnsafeDiskFile { .. }),
                "{backing}: {err}"
            );
        }
        let looped = disk_files(&[("a", qcow2(Some("b"), None)), ("b", qcow2(Some("a"), None))])
            .unwrap_err();
        assert!(looped.to_string().contains("loops"), "{looped}");
    }

    #[test]
    fn disk_files_may_not_use_external_data_files() {
        let err = disk_files(&[("a.qcow2", qcow2(None, Some("/dev/sda")))]).unwrap_err();
        assert!(err.to_string().contains("/dev/sda"), "{err}");
    }

    #[test]
    fn zero_digests_are_bounded() {
        let mut zeros = ZeroDigests::default();
        assert!(zeros.is_zero(4096, &zero_digest(4096)));
        assert!(!zeros.is_zero(1 << 60, &zero_digest(1)));
        for length in 1..=40 {
            zeros.is_zero(length, "sha256:x");
        }
        assert!(zeros.known.len() <= ZeroDigests::MAX_LENGTHS);
    }
}
