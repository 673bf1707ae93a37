//! `sarde export`: a libvirt VM (or a domain XML file) becomes an image in the local store.
//!
//! Every disk is exported with its whole backing chain, base first, each file under its own
//! name, so that images sharing a base share its blobs. NVRAM, kernel and initrd files the
//! domain refers to are exported too. The domain XML is anonymised (no UUID, MACs or
//! host-specific paths) and its file references become plain names. The tag is written last,
//! after every blob is in the store.
//!
//! In the default format only the chunks that hold data become layers, and each file's chunk size
//! grows with its data (`sardine_disk::chunked::auto_chunk_size`), so that the manifest of any disk
//! stays small. Before any work, the layers are counted from the files' data segments: an image
//! whose manifest would exceed what registries accept is refused then, with the chunk size that
//! would fit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sardine_disk::chunked::{self, PackOptions, pack_sparse_file};
use sardine_disk::{BlobSink, KnownBlob};
use sardine_libvirt::{BootFile, DiskKind, DomainXml, Libvirt, VmState};
use sardine_oci::Digest;
use sardine_oci::layout::{RepoSink, Store};
use sardine_oci::media_types;
use sardine_oci::reference::Reference;

use crate::error::ImageError;
use crate::format::{
    self, Descriptor, FileRole, ImageConfig, ImageFile, ImageLayers, Manifest, RootFs,
};
use crate::progress::Progress;

/// How disk files are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// zstd chunks, those that hold data (the default).
    Chunked {
        /// Uncompressed chunk size; `None`: chosen per file, growing with its data
        /// (`sardine_disk::chunked::auto_chunk_size`).
        chunk_size: Option<u64>,
    },
    /// sardinecake 0.4.2's gzip stream cut into pieces of `chunk_size` compressed bytes.
    Legacy {
        /// Compressed piece size (`None`: one piece per file).
        chunk_size: Option<u64>,
    },
}

/// What to export and where.
pub struct ExportOptions<'a> {
    /// The VM's name or UUID.
    pub vm: &'a str,
    /// The image to write (`name[:tag]`; the tag defaults to `latest`).
    pub reference: &'a Reference,
    /// The local store.
    pub store: &'a Store,
    /// libvirt URI (`None`: libvirt's default).
    pub connect: Option<&'a str>,
    /// Read the domain from this XML file instead of libvirt.
    pub domain_xml_file: Option<&'a Path>,
    /// A sardine VM config to include.
    pub vmconfig_file: Option<&'a Path>,
    /// How to encode files.
    pub disk_format: DiskFormat,
    /// Export even a running VM.
    pub force: bool,
    /// Worker threads for compression.
    pub threads: usize,
    /// The creation time recorded in the image, in seconds since the epoch (`None`: now). With
    /// `SOURCE_DATE_EPOCH`'s value, the same VM exports to the same image.
    pub created: Option<i64>,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
}

/// What an export produced.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The config's digest: the image ID.
    pub config_digest: Digest,
    /// The tag written.
    pub tag: String,
    /// Layers in the manifest.
    pub layers: usize,
}

/// A file the image will carry.
#[derive(Debug, Clone)]
struct ExportFile {
    path: PathBuf,
    name: String,
    role: FileRole,
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org), for [`ExportOptions::created`]: what a caller
/// that honours it passes.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

/// Exports a VM into the local store.
pub fn export(options: &ExportOptions<'_>) -> Result<ExportReport, ImageError> {
    let (xml_text, base_dir) = read_domain(options)?;
    let mut domain = DomainXml::parse(&xml_text)?;
    let files = collect_files(&mut domain, &base_dir)?;
    let vmconfig = options.vmconfig_file.map(read_vmconfig).transpose()?;
    let packings = plan_packings(options, &files, 1 + vmconfig.iter().count())?;

    let repo = options.store.repo(options.reference.name())?;
    repo.init()?;
    // Held until the tag is written, so that garbage collection leaves our new blobs alone.
    let _lock = repo.lock()?;
    let sink = ReusingSink {
        inner: RepoSink::new(&repo)?,
        known: known_chunks(options.store),
    };

    domain.anonymize();
    let domain_bytes = domain.to_xml()?.into_bytes();
    let (domain_digest, domain_size) = repo.put_blob_bytes(&domain_bytes)?;
    let mut layers = vec![Descriptor::new(
        media_types::DOMAIN_XML,
        &domain_digest,
        domain_size,
    )];
    let mut diff_ids = vec![domain_digest.clone()];
    let created = created_time(options.created);
    let history_entry = |created_by: &str| history_entry(&created, created_by);
    let mut history = vec![history_entry(&format!("virsh dumpxml '{}'", options.vm))];
    if let Some(config) = &vmconfig {
        let (digest, size) = repo.put_blob_bytes(config)?;
        layers.push(Descriptor::new(media_types::SARDINE_CONFIG, &digest, size));
        diff_ids.push(digest);
        history.push(history_entry("sarde export --vmconfig"));
    }
    for (file, packing) in files.iter().zip(packings) {
        let (file_layers, file_diff_ids) = pack(file, packing, &repo, options, &sink)?;
        layers.extend(file_layers);
        for diff_id in file_diff_ids {
            history.push(history_entry(&format!("sarde export {}", file.name)));
            diff_ids.push(diff_id);
        }
    }

    let config = ImageConfig {
        architecture: domain.arch().map(|a| format::go_arch(&a).to_owned()),
        os: Some(format::go_os(&xml_text).to_owned()),
        created: Some(serde_json::Value::String(created.clone())),
        rootfs: Some(RootFs {
            kind: "layers".into(),
            diff_ids,
        }),
        history,
    };
    let config_bytes = serde_json::to_vec_pretty(&config).map_err(std::io::Error::other)?;
    let (config_digest, config_size) = repo.put_blob_bytes(&config_bytes)?;
    let mut manifest = Manifest::new(
        Descriptor::new(media_types::OCI_CONFIG, &config_digest, config_size),
        layers,
    );
    if matches!(options.disk_format, DiskFormat::Chunked { .. }) {
        format::set_format_version(&mut manifest);
    }
    let manifest_bytes = manifest.to_json();
    let (manifest_digest, manifest_size) = repo.put_blob_bytes(&manifest_bytes)?;
    let tag = options.reference.tag().unwrap_or("latest").to_owned();
    repo.set_tag(
        &manifest_digest,
        manifest_size,
        media_types::OCI_MANIFEST,
        Some(&tag),
    )?;
    // Two digests users meet: the image ID (what export prints, names base VMs, `list` shows)
    // and the manifest digest (what registries and `NAME@sha256:…` references use).
    tracing::info!(
        "exported {} as {}:{tag}: image ID {}, manifest digest {manifest_digest}",
        options.vm,
        options.reference.name(),
        config_digest.hex()
    );
    Ok(ExportReport {
        manifest_digest,
        config_digest,
        tag,
        layers: manifest.layers.len(),
    })
}

/// The domain XML and the directory its relative paths are relative to.
fn read_domain(options: &ExportOptions<'_>) -> Result<(String, PathBuf), ImageError> {
    if let Some(file) = options.domain_xml_file {
        let text = fs_err::read_to_string(file)?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok((text, dir));
    }
    let libvirt = Libvirt::open_read_only(options.connect)?;
    let vm = crate::find_vm(&libvirt, options.vm)?;
    if !options.force && !matches!(vm.state()?, VmState::ShutOff) {
        return Err(ImageError::VmRunning {
            name: options.vm.to_owned(),
        });
    }
    Ok((vm.xml(true)?, PathBuf::from("/")))
}

fn read_vmconfig(path: &Path) -> Result<Vec<u8>, ImageError> {
    let text = fs_err::read(path)?;
    let config = crate::vmconfig::VmConfig::parse(&text, &path.display().to_string())?;
    Ok(serde_json::to_vec_pretty(config.document()).map_err(std::io::Error::other)?)
}

/// Finds every file the image must carry and points the domain at their plain names.
fn collect_files(domain: &mut DomainXml, base_dir: &Path) -> Result<Vec<ExportFile>, ImageError> {
    let mut files = FileSet::default();
    for disk in domain.disks() {
        let Some(source) = disk.source.as_deref() else {
            continue;
        };
        if disk.kind != DiskKind::File {
            let target = disk.target.as_deref().unwrap_or("?");
            return Err(ImageError::Unsupported {
                what: format!(
                    "disk {target} is of type '{}': only file-backed disks can be exported",
                    disk.kind.as_str()
                ),
            });
        }
        let path = base_dir.join(source);
        let chain = checked_chain(&path)?;
        // Base first, so that images sharing a base share its blobs.
        let mut top_name = String::new();
        for (i, element) in chain.iter().enumerate().rev() {
            let is_top = i == 0;
            top_name = files.add(element, FileRole::Disk, is_top)?;
        }
        domain.set_disk_source(disk.index, &top_name);
    }
    domain.remove_backing_stores();
    let boot = domain.boot_files();
    for (which, role, path) in [
        (BootFile::Kernel, FileRole::Kernel, boot.kernel),
        (BootFile::Initrd, FileRole::Initrd, boot.initrd),
        (BootFile::Nvram, FileRole::Nvram, boot.nvram),
    ] {
        let Some(path) = path else { continue };
        let path = base_dir.join(path);
        if which == BootFile::Nvram && !path.exists() {
            // Never started: libvirt makes the variable store from its template on import.
            domain.set_boot_file(which, None);
            continue;
        }
        let name = files.add(&path, role, true)?;
        domain.set_boot_file(which, Some(&name));
    }
    Ok(files.files)
}

/// The backing chain of a disk image (top first), refusing chains that cannot travel.
fn checked_chain(path: &Path) -> Result<Vec<PathBuf>, ImageError> {
    if sardine_disk::qcow2::read_header(path)?.is_none() {
        return Ok(vec![path.to_path_buf()]);
    }
    let chain = sardine_disk::qcow2::backing_chain(path)?;
    for pair in chain.windows(2) {
        let (overlay, backing) = (&pair[0], &pair[1]);
        let stored = overlay.stored_backing.clone().unwrap_or_default();
        let same_dir = backing.path.parent() == overlay.path.parent();
        if stored.contains('/') || !same_dir {
            return Err(ImageError::BackingChain {
                image: absolute(&overlay.path),
                backing: stored,
                backing_path: absolute(&backing.path),
            });
        }
    }
    Ok(chain.into_iter().map(|element| element.path).collect())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The files of an export, each once, under unique plain names.
#[derive(Default)]
struct FileSet {
    files: Vec<ExportFile>,
    by_path: HashMap<PathBuf, String>,
}

impl FileSet {
    /// Adds a file (once per real path) and returns its name in the image. A backing file
    /// keeps its name (overlays refer to it); a top-level file is renamed on a clash.
    fn add(&mut self, path: &Path, role: FileRole, renamable: bool) -> Result<String, ImageError> {
        let real = fs_err::canonicalize(path)?;
        if let Some(name) = self.by_path.get(&real) {
            return Ok(name.clone());
        }
        let base = real
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ImageError::Unsupported {
                what: format!("{}: file name is not UTF-8", real.display()),
            })?
            .to_owned();
        let base = if renamable {
            safe_name(&base)
        } else {
            check_backing_name(&real, base)?
        };
        let mut name = base.clone();
        let mut n = 0;
        while self.files.iter().any(|f| f.name == name) {
            if !renamable {
                return Err(ImageError::Unsupported {
                    what: format!(
                        "two different backing files are both called {base}; rename one and rebase its overlays"
                    ),
                });
            }
            n += 1;
            name = match base.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}-{n}.{ext}"),
                None => format!("{base}-{n}"),
            };
        }
        self.by_path.insert(real.clone(), name.clone());
        self.files.push(ExportFile {
            path: real,
            name: name.clone(),
            role,
        });
        Ok(name)
    }
}

/// `name` made safe for an image ([`sardine_disk::names`]): every other character becomes `_`,
/// leading `.` and `-` go, and the result is cut to the longest name allowed (a file nobody
/// refers to by name but the domain, which export rewrites, may be renamed).
fn safe_name(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '+' | '-' => c,
            _ => '_',
        })
        .collect();
    let trimmed = replaced.trim_start_matches(['.', '-']);
    let mut safe: String = trimmed
        .chars()
        .take(sardine_disk::names::MAX_FILE_NAME_LEN - 8)
        .collect();
    if safe.is_empty() {
        safe = "file".to_owned();
    }
    safe
}

/// A backing file keeps its name (its overlays refer to it), which must therefore be safe.
fn check_backing_name(path: &Path, name: String) -> Result<String, ImageError> {
    if sardine_disk::names::is_safe_file_name(&name) {
        return Ok(name);
    }
    Err(ImageError::UnsafeBackingName {
        path: path.to_path_buf(),
    })
}

/// How one file is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    /// The default format, with chunks of this size.
    Chunked(u64),
    /// The legacy format, cut into pieces of this size (`None`: one piece).
    Legacy(Option<u64>),
}

/// How every file is packed: in the default format, each with the options' chunk size or (when
/// `None`) its own, after checking that the manifest (with `other_layers` besides the files')
/// stays within what registries accept.
fn plan_packings(
    options: &ExportOptions<'_>,
    files: &[ExportFile],
    other_layers: usize,
) -> Result<Vec<Packing>, ImageError> {
    let chunk_size = match options.disk_format {
        DiskFormat::Chunked { chunk_size } => chunk_size,
        DiskFormat::Legacy { chunk_size } => {
            return Ok(vec![Packing::Legacy(chunk_size); files.len()]);
        }
    };
    let segments = files
        .iter()
        .map(|file| Ok(chunked::file_segments(&file.path)?.1))
        .collect::<Result<Vec<_>, ImageError>>()?;
    let sizes: Vec<u64> = segments
        .iter()
        .map(|file| chunk_size.unwrap_or_else(|| chunked::auto_chunk_size(file)))
        .collect();
    let estimate = ManifestEstimate::new(&segments, &sizes, other_layers);
    if estimate.bytes() <= MAX_MANIFEST_SIZE {
        return Ok(sizes.into_iter().map(Packing::Chunked).collect());
    }
    let (largest, largest_chunks) = estimate.largest_file();
    Err(ImageError::ManifestTooLarge {
        vm: options.vm.to_owned(),
        file: files[largest].path.clone(),
        chunks: largest_chunks,
        chunk_size: sizes[largest],
        bytes: estimate.bytes(),
        limit: MAX_MANIFEST_SIZE,
        fitting_chunk_size: fitting_chunk_size(&segments, other_layers),
    })
}

/// The manifest size limit of registries (the distribution registry's default) and of sarde.
const MAX_MANIFEST_SIZE: u64 = sardine_oci::registry::MAX_MANIFEST_SIZE;

/// The smallest power-of-two chunk size from the default up to the largest allowed that, used
/// for every file, keeps the manifest within [`MAX_MANIFEST_SIZE`].
fn fitting_chunk_size(segments: &[Vec<(u64, u64)>], other_layers: usize) -> Option<u64> {
    std::iter::successors(Some(chunked::DEFAULT_CHUNK_SIZE), |size| Some(size * 2))
        .take_while(|&size| size <= chunked::MAX_CHUNK_SIZE)
        .find(|&size| {
            let sizes = vec![size; segments.len()];
            ManifestEstimate::new(segments, &sizes, other_layers).bytes() <= MAX_MANIFEST_SIZE
        })
}

/// An upper bound of an image's manifest size, from its files' chunk counts.
struct ManifestEstimate {
    /// Chunks with data, per file.
    chunks: Vec<u64>,
    other_layers: usize,
}

impl ManifestEstimate {
    /// Counts the chunks of each file (its data `segments`, cut at its chunk size).
    fn new(segments: &[Vec<(u64, u64)>], sizes: &[u64], other_layers: usize) -> Self {
        let chunks = segments
            .iter()
            .zip(sizes)
            .map(|(segments, &size)| chunked::data_chunk_count(segments, size))
            .collect();
        Self {
            chunks,
            other_layers,
        }
    }

    /// The manifest's size at most: every file a header layer and its chunks.
    fn bytes(&self) -> u64 {
        let files = self.chunks.len() as u64;
        let chunks = self.other_layers as u64 + self.chunks.iter().sum::<u64>();
        format::MANIFEST_BASE_BYTES
            + files * format::MAX_HEADER_LAYER_BYTES
            + chunks * format::MAX_CHUNK_LAYER_BYTES
    }

    /// The index and chunk count of the file with the most chunks.
    fn largest_file(&self) -> (usize, u64) {
        self.chunks
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|&(_, chunks)| chunks)
            .unwrap_or_default()
    }
}

/// Packs one file and returns its layers and diff_ids: in the legacy format (as 0.4.2 writes it)
/// one diff_id for the whole file.
fn pack(
    file: &ExportFile,
    packing: Packing,
    repo: &sardine_oci::layout::Repo,
    options: &ExportOptions<'_>,
    sink: &ReusingSink,
) -> Result<(Vec<Descriptor>, Vec<Digest>), ImageError> {
    let size = fs_err::metadata(&file.path)?.len();
    options
        .progress
        .start(&format!("exporting {}", file.name), size);
    let result = match packing {
        Packing::Chunked(chunk_size) => {
            let (header_digest, _) = repo.put_blob_bytes(format::FILE_HEADER_BLOB)?;
            pack_chunked(file, &header_digest, chunk_size, options, sink)?
        }
        Packing::Legacy(chunk_size) => {
            let packed = sardine_disk::legacy::pack_file(&file.path, &file.name, chunk_size, sink)?;
            options.progress.advance(size);
            let layers = packed
                .blobs
                .iter()
                .enumerate()
                .map(|(i, (digest, size))| {
                    Descriptor::new(
                        &sardine_disk::legacy::media_type(&packed.mime, i),
                        digest,
                        *size,
                    )
                })
                .collect();
            (layers, vec![packed.uncompressed_digest])
        }
    };
    options.progress.finish();
    Ok(result)
}

/// Packs one file in the default format: its header layer, then its chunks that hold data.
fn pack_chunked(
    file: &ExportFile,
    header_digest: &Digest,
    chunk_size: u64,
    options: &ExportOptions<'_>,
    sink: &ReusingSink,
) -> Result<(Vec<Descriptor>, Vec<Digest>), ImageError> {
    let pack_options = PackOptions {
        chunk_size,
        level: 3,
        threads: options.threads,
    };
    let advance = |n: u64| options.progress.advance(n);
    let packed = pack_sparse_file(&file.path, &pack_options, sink, &advance)?;
    let mut layers = vec![format::file_header_layer(
        header_digest,
        &file.name,
        file.role,
        packed.size,
    )];
    let mut diff_ids = vec![header_digest.clone()];
    for chunk in packed.chunks {
        layers.push(format::sparse_chunk_layer(&chunk));
        diff_ids.push(chunk.digest);
    }
    Ok((layers, diff_ids))
}

fn history_entry(created: &str, created_by: &str) -> serde_json::Value {
    serde_json::json!({ "created": created, "created_by": created_by })
}

/// The creation time of an image, RFC 3339: `seconds` since the epoch, or now.
fn created_time(seconds: Option<i64>) -> String {
    seconds
        .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339()
}

/// The sink of an export: the repository's, offering the blobs of chunks that images in the
/// store already have, so that re-exporting a VM whose disk changed a little compresses only
/// the changed chunks. The packer checks every offered blob before it uses it.
struct ReusingSink {
    inner: RepoSink,
    known: HashMap<(Digest, u64), KnownBlob>,
}

impl BlobSink for ReusingSink {
    fn temp_dir(&self) -> &Path {
        self.inner.temp_dir()
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.inner.contains(digest)
    }

    fn commit(&self, temp: &Path, digest: &Digest, size: u64) -> std::io::Result<()> {
        self.inner.commit(temp, digest, size)
    }

    fn known_chunk(&self, digest: &Digest, length: u64) -> Option<KnownBlob> {
        self.known.get(&(digest.clone(), length)).cloned()
    }

    fn adopt(&self, blob: &KnownBlob) -> std::io::Result<bool> {
        self.inner.adopt(blob)
    }
}

/// The chunks of every chunked image in the store, by (uncompressed digest, length). Images
/// that cannot be read are skipped: this only saves work.
fn known_chunks(store: &Store) -> HashMap<(Digest, u64), KnownBlob> {
    let mut known = HashMap::new();
    for entry in store.list().unwrap_or_default() {
        let Ok(repo) = store.existing_repo(&entry.name) else {
            continue;
        };
        let Ok(descriptor) = repo.resolve(None, Some(&entry.digest)) else {
            continue;
        };
        let Ok(manifest) = repo.read_manifest(&descriptor) else {
            continue;
        };
        let Ok(layers) = ImageLayers::from_manifest(&manifest) else {
            continue;
        };
        for file in layers.files {
            let ImageFile::Chunked { chunks, .. } = file else {
                continue;
            };
            for chunk in chunks {
                let Ok(digest) = chunk.blob.valid_digest() else {
                    continue;
                };
                let blob = KnownBlob {
                    path: repo.blob_path(&digest),
                    digest,
                    size: chunk.blob.size,
                };
                known.entry((chunk.digest, chunk.length)).or_insert(blob);
            }
        }
    }
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_set_dedupes_paths_and_renames_top_level_clashes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs_err::create_dir_all(&a).unwrap();
        fs_err::create_dir_all(&b).unwrap();
        fs_err::write(a.join("disk.qcow2"), b"1").unwrap();
        fs_err::write(b.join("disk.qcow2"), b"2").unwrap();
        let mut set = FileSet::default();
        assert_eq!(
            set.add(&a.join("disk.qcow2"), FileRole::Disk, true)
                .unwrap(),
            "disk.qcow2"
        );
        assert_eq!(
            set.add(&a.join("disk.qcow2"), FileRole::Disk, true)
                .unwrap(),
            "disk.qcow2"
        );
        assert_eq!(
            set.add(&b.join("disk.qcow2"), FileRole::Disk, true)
                .unwrap(),
            "disk-1.qcow2"
        );
        assert_eq!(set.files.len(), 2);
    }

    const GIB: u64 = 1 << 30;

    /// The manifest bound for files with these segments at their automatic chunk sizes.
    fn auto_estimate(files: &[Vec<(u64, u64)>]) -> u64 {
        let sizes: Vec<u64> = files.iter().map(|f| chunked::auto_chunk_size(f)).collect();
        ManifestEstimate::new(files, &sizes, 2).bytes()
    }

    #[test]
    fn manifests_of_big_disks_stay_small_at_automatic_chunk_sizes() {
        // 200 GiB with 2 MiB of data in two places; 1 TiB of data in one file.
        let sparse = vec![(0, 1 << 20), (150 * GIB, 1 << 20)];
        assert!(auto_estimate(std::slice::from_ref(&sparse)) <= 100 << 10);
        let dense = vec![(0, 1024 * GIB)];
        assert!(auto_estimate(std::slice::from_ref(&dense)) <= 1 << 20);
        assert_eq!(
            fitting_chunk_size(&[sparse], 2),
            Some(chunked::DEFAULT_CHUNK_SIZE)
        );
    }

    #[test]
    fn a_manifest_too_large_is_found_with_the_chunk_size_that_fits() {
        let dense = vec![vec![(0, 1024 * GIB)]];
        let at_16_mib = ManifestEstimate::new(&dense, &[16 << 20], 2);
        assert!(
            at_16_mib.bytes() > MAX_MANIFEST_SIZE,
            "65,536 chunks do not fit"
        );
        assert_eq!(at_16_mib.largest_file(), (0, 65_536));
        let fitting = fitting_chunk_size(&dense, 2).unwrap();
        assert!(ManifestEstimate::new(&dense, &[fitting], 2).bytes() <= MAX_MANIFEST_SIZE);
        assert!(ManifestEstimate::new(&dense, &[fitting / 2], 2).bytes() > MAX_MANIFEST_SIZE);
        let too_much = vec![vec![(0, 64 * 1024 * GIB)]];
        assert_eq!(fitting_chunk_size(&too_much, 2), None);
    }

    #[test]
    fn file_names_are_made_safe_or_refused() {
        assert_eq!(safe_name("disk.qcow2"), "disk.qcow2");
        assert_eq!(safe_name("nbd:127.0.0.1:10809"), "nbd_127.0.0.1_10809");
        assert_eq!(safe_name(".-my disk (1).img"), "my_disk__1_.img");
        assert_eq!(safe_name("..."), "file");
        assert!(sardine_disk::names::is_safe_file_name(&safe_name(
            &"é".repeat(300)
        )));
        let dir = tempfile::tempdir().unwrap();
        let evil = dir.path().join("json:{}");
        fs_err::write(&evil, b"1").unwrap();
        let mut set = FileSet::default();
        assert_eq!(set.add(&evil, FileRole::Disk, true).unwrap(), "json___");
        let err = FileSet::default()
            .add(&evil, FileRole::Disk, false)
            .unwrap_err();
        assert!(matches!(err, ImageError::UnsafeBackingName { .. }), "{err}");
    }

    #[test]
    fn file_set_refuses_clashing_backing_files() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a", "b"] {
            fs_err::create_dir_all(dir.path().join(sub)).unwrap();
            fs_err::write(dir.path().join(sub).join("base.qcow2"), sub).unwrap();
        }
        let mut set = FileSet::default();
        set.add(&dir.path().join("a/base.qcow2"), FileRole::Disk, false)
            .unwrap();
        assert!(
            set.add(&dir.path().join("b/base.qcow2"), FileRole::Disk, false)
                .is_err()
        );
    }
}
