//! The image format: how a VM becomes an OCI manifest, a config blob and layers, and back.
//!
//! Layers, in order (the same order as sardinecake 0.4.2, so each tool reads the other's images):
//! 1. the domain XML (`application/vnd.libvirt.domain.config+xml`), anonymised;
//! 2. optionally the sardine VM config (`application/vnd.sardinecake.vm.config.v1+json`);
//! 3. the files of the VM, each chain of disk images base first, then NVRAM, kernel, initrd:
//!    - default format, version 2 (manifest annotation `org.sardinecake.format: "2"`): per file,
//!      a header layer (`application/vnd.sardinecake.file.v2+json`, the blob `{}`) annotated with
//!      the file's name, role and size, followed by the chunks that hold data, each a zstd blob
//!      (`application/vnd.sardinecake.disk.chunk.v1+zstd`) with one annotation: its offset,
//!      length and uncompressed digest. Gaps between chunks are holes;
//!    - default format, version 1 (images of earlier versions, still read): fixed-size chunks
//!      tiling each file, all-zero ones too, each annotated with the file name, the file's role
//!      and size, and the chunk's offset, length and uncompressed digest;
//!    - legacy format (sardinecake 0.4.2): one gzip member per file, cut into pieces
//!      (`<mime>+gzip`, then `<mime>+gzip;chunk=N`).
//!
//! The config blob's `rootfs.diff_ids` lists, per layer, the digest of its uncompressed
//! content (legacy images: one entry per file, as 0.4.2 writes them). `docs/format.md` is the
//! full specification.

use sardine_oci::Digest;
use sardine_oci::media_types::{
    ANNOTATION_TITLE, DOCKER_CONFIG, DOCKER_MANIFEST_V2, DOMAIN_XML, OCI_CONFIG, OCI_MANIFEST,
    SARDINE_CONFIG,
};
use serde::{Deserialize, Serialize};

use crate::error::ImageError;

/// Media type of one chunk of a file in the default format.
pub const CHUNK_MEDIA_TYPE: &str = sardine_disk::chunked::MEDIA_TYPE_CHUNK;

/// Annotation: what the file is to the VM (see [`FileRole`]).
pub const ANNOTATION_ROLE: &str = "org.sardinecake.file.role";
/// Annotation: the whole file's size in bytes.
pub const ANNOTATION_FILE_SIZE: &str = "org.sardinecake.file.size";
/// Annotation: where the chunk starts in the file.
pub const ANNOTATION_OFFSET: &str = "org.sardinecake.chunk.offset";
/// Annotation: the chunk's uncompressed length.
pub const ANNOTATION_LENGTH: &str = "org.sardinecake.chunk.length";
/// Annotation: `sha256:<hex>` of the chunk's uncompressed bytes.
pub const ANNOTATION_CHUNK_DIGEST: &str = "org.sardinecake.chunk.digest";

/// Media type of the header layer of a file in the default format, version 2.
pub const FILE_MEDIA_TYPE: &str = "application/vnd.sardinecake.file.v2+json";
/// The content of a file header layer: its annotations say everything.
pub const FILE_HEADER_BLOB: &[u8] = b"{}";
/// Annotation of a chunk in format version 2: `<offset> <length> sha256:<hex>` (the chunk's range
/// in the file and the digest of its uncompressed bytes).
pub const ANNOTATION_CHUNK: &str = "org.sardinecake.chunk";
/// Manifest annotation: the version of the default format (absent: version 1).
pub const ANNOTATION_FORMAT: &str = "org.sardinecake.format";
/// The version of the default format that export writes, and the newest that import reads.
pub const FORMAT_VERSION: u32 = 2;

/// The largest file a header of format version 2 may declare (its holes cost nothing, but a
/// size without bounds is no size).
pub const MAX_FILE_SIZE: u64 = 64 << 40;

/// The largest domain XML or sardine config we read.
pub const MAX_SMALL_BLOB: u64 = 1 << 20;

pub use sardine_oci::manifest::{Descriptor, Manifest};

/// Checks what import relies on in a manifest read from an untrusted source: an image
/// manifest (not an index) whose config is an image config and whose digests are valid.
pub fn check_manifest(manifest: &Manifest) -> Result<(), ImageError> {
    if manifest.schema_version != 2 {
        return Err(ImageError::Malformed {
            what: format!("unsupported schemaVersion {}", manifest.schema_version),
        });
    }
    if let Some(media_type) = &manifest.media_type
        && media_type != OCI_MANIFEST
        && media_type != DOCKER_MANIFEST_V2
    {
        return Err(ImageError::Malformed {
            what: format!("not an image manifest but {media_type}"),
        });
    }
    let config_type = manifest.config.media_type();
    if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
        return Err(ImageError::Malformed {
            what: format!("the config has media type {config_type:?}, not {OCI_CONFIG}"),
        });
    }
    for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
        check_digest(&descriptor.digest)?;
    }
    Ok(())
}

/// Parses and checks a manifest from untrusted bytes.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ImageError> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| ImageError::Malformed {
        what: format!("the manifest is not valid JSON: {e}"),
    })?;
    check_manifest(&manifest)?;
    Ok(manifest)
}

fn annotation<'a>(layer: &'a Descriptor, key: &str) -> Result<&'a str, ImageError> {
    layer.annotation(key).ok_or_else(|| ImageError::Malformed {
        what: format!("layer {} has no annotation {key}", layer.digest),
    })
}

fn annotation_u64(layer: &Descriptor, key: &str) -> Result<u64, ImageError> {
    let value = annotation(layer, key)?;
    value.parse().map_err(|_| ImageError::Malformed {
        what: format!(
            "layer {}: annotation {key}={value:?} is not a number",
            layer.digest
        ),
    })
}

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<Digest, ImageError> {
    Digest::parse(digest).map_err(|_| ImageError::Malformed {
        what: format!("invalid digest {digest:?}"),
    })
}

/// What a file is to the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileRole {
    /// A disk image (or a backing file of one).
    Disk,
    /// The UEFI variable store.
    Nvram,
    /// A kernel for direct kernel boot.
    Kernel,
    /// An initrd for direct kernel boot.
    Initrd,
}

impl FileRole {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileRole::Disk => "disk",
            FileRole::Nvram => "nvram",
            FileRole::Kernel => "kernel",
            FileRole::Initrd => "initrd",
        }
    }

    fn parse(value: &str) -> Result<FileRole, ImageError> {
        match value {
            "disk" => Ok(FileRole::Disk),
            "nvram" => Ok(FileRole::Nvram),
            "kernel" => Ok(FileRole::Kernel),
            "initrd" => Ok(FileRole::Initrd),
            other => Err(ImageError::Malformed {
                what: format!("unknown file role {other:?}"),
            }),
        }
    }
}

/// One chunk of a file in the default format.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The layer holding the compressed chunk.
    pub blob: Descriptor,
    /// Offset in the file.
    pub offset: u64,
    /// Uncompressed length.
    pub length: u64,
    /// The digest of the uncompressed bytes.
    pub digest: Digest,
}

/// A file of the image, in the order of the manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageFile {
    /// Default format: chunks that tile the file.
    Chunked {
        /// Plain file name.
        name: String,
        /// What the file is.
        role: FileRole,
        /// Size in bytes.
        size: u64,
        /// The chunks, by offset.
        chunks: Vec<Chunk>,
        /// Whether gaps between the chunks are holes (format version 2), rather than the chunks
        /// tiling the file (version 1).
        sparse: bool,
    },
    /// sardinecake 0.4.2's format: one gzip member cut into pieces, name in the gzip header.
    Legacy {
        /// Media type without `+gzip` (e.g. `application/x-qemu-disk`).
        mime: String,
        /// The pieces, in order.
        pieces: Vec<Descriptor>,
    },
}

/// An image's layers, sorted out.
#[derive(Debug, Clone)]
pub struct ImageLayers {
    /// The domain XML layer.
    pub domain: Descriptor,
    /// The sardine VM config layer.
    pub vmconfig: Option<Descriptor>,
    /// The files, in manifest order.
    pub files: Vec<ImageFile>,
}

impl ImageLayers {
    /// Sorts out a manifest's layers, checking everything that import relies on: one domain
    /// XML, plain file names, chunks that tile each file exactly, sizes within bounds.
    pub fn from_manifest(manifest: &Manifest) -> Result<ImageLayers, ImageError> {
        check_format_version(manifest)?;
        let mut domain = None;
        let mut vmconfig = None;
        let mut files: Vec<ImageFile> = Vec::new();
        for layer in &manifest.layers {
            let media_type = layer.media_type();
            if media_type == DOMAIN_XML {
                if domain.is_none() {
                    domain = Some(bounded(layer, MAX_SMALL_BLOB)?.clone());
                }
            } else if media_type == SARDINE_CONFIG {
                if vmconfig.is_none() {
                    vmconfig = Some(bounded(layer, MAX_SMALL_BLOB)?.clone());
                }
            } else if media_type == FILE_MEDIA_TYPE {
                add_file_header(&mut files, layer)?;
            } else if media_type == CHUNK_MEDIA_TYPE && layer.annotation(ANNOTATION_CHUNK).is_some()
            {
                add_sparse_chunk(&mut files, layer)?;
            } else if media_type == CHUNK_MEDIA_TYPE {
                add_chunk(&mut files, layer)?;
            } else if let Some((mime, index)) = sardine_disk::legacy::parse_media_type(media_type) {
                add_legacy_piece(&mut files, layer, mime, index)?;
            } else if layer.media_type.is_none() {
                // 0.4.2 omits the type of a file libmagic could not read; without it (and its
                // `;chunk=N`), nothing says which file the piece belongs to. 0.4.2's own import
                // crashes on such layers.
                return Err(ImageError::Malformed {
                    what: format!(
                        "layer {} has no mediaType (sardinecake 0.4.2 writes none when it cannot tell a file's type); \
                         re-export the VM",
                        layer.digest
                    ),
                });
            } else {
                return Err(ImageError::Malformed {
                    what: format!(
                        "layer {} has unknown media type {media_type:?}",
                        layer.digest
                    ),
                });
            }
        }
        let domain = domain.ok_or_else(|| ImageError::Malformed {
            what: "the image has no domain XML layer".into(),
        })?;
        for file in &mut files {
            if let ImageFile::Chunked {
                name,
                size,
                chunks,
                sparse,
                ..
            } = file
            {
                chunks.sort_by_key(|c| c.offset);
                check_tiling(name, *size, chunks, *sparse)?;
            }
        }
        Ok(ImageLayers {
            domain,
            vmconfig,
            files,
        })
    }
}

fn bounded(layer: &Descriptor, max: u64) -> Result<&Descriptor, ImageError> {
    if layer.size > max {
        return Err(ImageError::Malformed {
            what: format!(
                "layer {} claims {} bytes (at most {max} allowed)",
                layer.digest, layer.size
            ),
        });
    }
    Ok(layer)
}

fn add_chunk(files: &mut Vec<ImageFile>, layer: &Descriptor) -> Result<(), ImageError> {
    let name = plain_file_name(annotation(layer, ANNOTATION_TITLE)?)?.to_owned();
    let role = match layer.annotation(ANNOTATION_ROLE) {
        Some(role) => FileRole::parse(role)?,
        None => FileRole::Disk,
    };
    let size = annotation_u64(layer, ANNOTATION_FILE_SIZE)?;
    let chunk = Chunk {
        blob: layer.clone(),
        offset: annotation_u64(layer, ANNOTATION_OFFSET)?,
        length: annotation_u64(layer, ANNOTATION_LENGTH)?,
        digest: check_digest(annotation(layer, ANNOTATION_CHUNK_DIGEST)?)?,
    };
    check_chunk(&name, &chunk)?;
    let existing = files
        .iter_mut()
        .find(|f| matches!(f, ImageFile::Chunked { name: n, .. } if *n == name));
    match existing {
        Some(ImageFile::Chunked {
            role: r,
            size: s,
            chunks,
            sparse,
            ..
        }) => {
            if *r != role || *s != size || *sparse {
                return Err(ImageError::Malformed {
                    what: format!("the chunks of {name} disagree on its role or size"),
                });
            }
            chunks.push(chunk);
        }
        _ => files.push(ImageFile::Chunked {
            name,
            role,
            size,
            chunks: vec![chunk],
            sparse: false,
        }),
    }
    Ok(())
}

/// Refuses images of a newer format version than this one reads.
fn check_format_version(manifest: &Manifest) -> Result<(), ImageError> {
    let Some(value) = manifest
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(ANNOTATION_FORMAT))
    else {
        return Ok(());
    };
    match value.parse::<u32>() {
        Ok(version) if (1..=FORMAT_VERSION).contains(&version) => Ok(()),
        _ => Err(ImageError::Malformed {
            what: format!(
                "the manifest says format version {value:?}; this version reads 1 to {FORMAT_VERSION} (a newer one wrote it?)"
            ),
        }),
    }
}

/// Starts a file of format version 2 from its header layer.
fn add_file_header(files: &mut Vec<ImageFile>, layer: &Descriptor) -> Result<(), ImageError> {
    let name = plain_file_name(annotation(layer, ANNOTATION_TITLE)?)?.to_owned();
    let role = FileRole::parse(annotation(layer, ANNOTATION_ROLE)?)?;
    let size = annotation_u64(layer, ANNOTATION_FILE_SIZE)?;
    if size > MAX_FILE_SIZE {
        return Err(ImageError::Malformed {
            what: format!("{name} claims {size} bytes (at most {MAX_FILE_SIZE} allowed)"),
        });
    }
    let taken = files
        .iter()
        .any(|f| matches!(f, ImageFile::Chunked { name: n, .. } if *n == name));
    if taken {
        return Err(ImageError::Malformed {
            what: format!("the image has two files called {name}"),
        });
    }
    files.push(ImageFile::Chunked {
        name,
        role,
        size,
        chunks: Vec::new(),
        sparse: true,
    });
    Ok(())
}

/// Adds a chunk of format version 2 to the file whose header precedes it.
fn add_sparse_chunk(files: &mut [ImageFile], layer: &Descriptor) -> Result<(), ImageError> {
    match files.last_mut() {
        Some(ImageFile::Chunked {
            name,
            chunks,
            sparse: true,
            ..
        }) => {
            let chunk = parse_sparse_chunk(layer)?;
            check_chunk(name, &chunk)?;
            chunks.push(chunk);
            Ok(())
        }
        _ => Err(ImageError::Malformed {
            what: format!(
                "chunk layer {} does not follow the header layer of its file",
                layer.digest
            ),
        }),
    }
}

/// The chunk a layer of format version 2 describes in its [`ANNOTATION_CHUNK`].
fn parse_sparse_chunk(layer: &Descriptor) -> Result<Chunk, ImageError> {
    let value = annotation(layer, ANNOTATION_CHUNK)?;
    let malformed = || ImageError::Malformed {
        what: format!(
            "layer {}: annotation {ANNOTATION_CHUNK}={value:?} is not \"<offset> <length> <digest>\"",
            layer.digest
        ),
    };
    let mut fields = value.split(' ');
    let (Some(offset), Some(length), Some(digest), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed());
    };
    let chunk = Chunk {
        blob: layer.clone(),
        offset: offset.parse().map_err(|_| malformed())?,
        length: length.parse().map_err(|_| malformed())?,
        digest: check_digest(digest)?,
    };
    Ok(chunk)
}

/// Checks that the length of a chunk of the file `name` is within bounds.
fn check_chunk(name: &str, chunk: &Chunk) -> Result<(), ImageError> {
    if chunk.length > sardine_disk::chunked::MAX_CHUNK_SIZE {
        return Err(ImageError::Malformed {
            what: format!(
                "layer {}: a chunk of {name} claims {} bytes (at most {} allowed)",
                chunk.blob.digest,
                chunk.length,
                sardine_disk::chunked::MAX_CHUNK_SIZE
            ),
        });
    }
    Ok(())
}

fn add_legacy_piece(
    files: &mut Vec<ImageFile>,
    layer: &Descriptor,
    mime: &str,
    index: usize,
) -> Result<(), ImageError> {
    if index > 0 {
        // A continuation belongs to the latest file of the same type (0.4.2 groups by type).
        let previous = files
            .iter_mut()
            .rev()
            .find(|f| matches!(f, ImageFile::Legacy { mime: m, .. } if m == mime));
        if let Some(ImageFile::Legacy { pieces, .. }) = previous {
            if pieces.len() != index {
                return Err(ImageError::Malformed {
                    what: format!(
                        "layer {} is chunk {index} of a file with {} pieces so far",
                        layer.digest,
                        pieces.len()
                    ),
                });
            }
            pieces.push(layer.clone());
            return Ok(());
        }
        return Err(ImageError::Malformed {
            what: format!("layer {} continues a file that never started", layer.digest),
        });
    }
    files.push(ImageFile::Legacy {
        mime: mime.to_owned(),
        pieces: vec![layer.clone()],
    });
    Ok(())
}

/// Checks that `name` is a safe file name ([`sardine_disk::names`]): letters, digits, `.`, `_`,
/// `+`, `-`, not starting with `.` or `-`, so no path, no hidden file, no QEMU protocol.
pub fn plain_file_name(name: &str) -> Result<&str, ImageError> {
    if !sardine_disk::names::is_safe_file_name(name) {
        return Err(ImageError::UnsafeFileName {
            name: name.escape_debug().to_string(),
        });
    }
    Ok(name)
}

/// Checks that the chunks (sorted by offset) tile `[0, size)`; `sparse`: that they do not overlap
/// and end within it.
fn check_tiling(name: &str, size: u64, chunks: &[Chunk], sparse: bool) -> Result<(), ImageError> {
    let mut next = 0u64;
    for chunk in chunks {
        let gap = chunk.offset > next && sparse;
        if (chunk.offset != next && !gap) || chunk.length == 0 {
            return Err(ImageError::Malformed {
                what: format!(
                    "the chunks of {name} do not tile it (gap or overlap at byte {next})"
                ),
            });
        }
        next = chunk
            .offset
            .checked_add(chunk.length)
            .ok_or_else(|| ImageError::Malformed {
                what: format!("chunk of {name} overflows"),
            })?;
    }
    if next > size || (next != size && !sparse) {
        return Err(ImageError::Malformed {
            what: format!("the chunks of {name} cover {next} bytes, but it has {size}"),
        });
    }
    Ok(())
}

/// The header layer of a file in format version 2; `header_digest` is that of [`FILE_HEADER_BLOB`].
pub fn file_header_layer(header_digest: &str, name: &str, role: FileRole, size: u64) -> Descriptor {
    let mut layer = Descriptor::new(
        FILE_MEDIA_TYPE,
        header_digest,
        FILE_HEADER_BLOB.len() as u64,
    );
    layer.set_annotation(ANNOTATION_TITLE, name);
    layer.set_annotation(ANNOTATION_ROLE, role.as_str());
    layer.set_annotation(ANNOTATION_FILE_SIZE, &size.to_string());
    layer
}

/// The layer of a chunk in format version 2.
pub fn sparse_chunk_layer(chunk: &sardine_disk::chunked::PackedChunk) -> Descriptor {
    let mut layer = Descriptor::new(CHUNK_MEDIA_TYPE, &chunk.blob_digest, chunk.blob_size);
    layer.set_annotation(
        ANNOTATION_CHUNK,
        &format!("{} {} {}", chunk.offset, chunk.length, chunk.digest),
    );
    layer
}

/// Marks a manifest as written in [`FORMAT_VERSION`].
pub fn set_format_version(manifest: &mut Manifest) {
    manifest
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION_FORMAT.to_owned(), FORMAT_VERSION.to_string());
}

/// At most what a chunk layer (or a domain XML or VM config layer) adds to a manifest: with the
/// longest numbers, checked by a test. A real one takes about 360 bytes.
pub const MAX_CHUNK_LAYER_BYTES: u64 = 420;

/// At most what a file header layer adds to a manifest, with a name of 255 bytes.
pub const MAX_HEADER_LAYER_BYTES: u64 = 768;

/// At most what a manifest takes besides its layers (config descriptor, annotations).
pub const MANIFEST_BASE_BYTES: u64 = 1024;

/// The image config blob (what docker calls the image configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Go-style architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: Option<String>,
    /// Go-style OS (`linux`, `windows`, ...).
    #[serde(default)]
    pub os: Option<String>,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<serde_json::Value>,
    /// Layer digests of the uncompressed content.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
    /// What made each layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
}

/// `rootfs` of the image config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed digests.
    pub diff_ids: Vec<Digest>,
}

/// Maps libvirt's architecture names to Go's, as OCI platforms use them.
pub fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i386" => "386",
        "armv6l" | "armv7l" => "arm",
        "mipsel" => "mipsle",
        "mips64el" => "mips64le",
        "ppc64le" => "ppc64le",
        other => other,
    }
}

/// The Go-style OS of a domain, from its libosinfo metadata (default `linux`).
pub fn go_os(domain_xml: &str) -> &'static str {
    // libosinfo ids are URLs such as http://microsoft.com/win/10 or http://freebsd.org/freebsd/14.0.
    const OSES: [(&str, &str); 11] = [
        ("microsoft.com/win", "windows"),
        ("freebsd.org", "freebsd"),
        ("openbsd.org", "openbsd"),
        ("netbsd.org", "netbsd"),
        ("dragonflybsd.org", "dragonfly"),
        ("apple.com", "darwin"),
        ("android", "android"),
        ("haiku-os.org", "haiku"),
        ("illumos", "illumos"),
        ("sun.com/solaris", "solaris"),
        ("gnu.org/hurd", "hurd"),
    ];
    let Some(start) = domain_xml.find("libosinfo:os") else {
        return "linux";
    };
    let id = domain_xml[start..].split(['"', '\'']).nth(1).unwrap_or("");
    OSES.iter()
        .find(|(needle, _)| id.contains(needle))
        .map_or("linux", |(_, os)| os)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn chunk(name: &str, offset: u64, length: u64, size: u64) -> Descriptor {
        let mut d = Descriptor::new(CHUNK_MEDIA_TYPE, D2, 10);
        for (k, v) in [
            (ANNOTATION_TITLE, name.to_owned()),
            (ANNOTATION_ROLE, "disk".to_owned()),
            (ANNOTATION_FILE_SIZE, size.to_string()),
            (ANNOTATION_OFFSET, offset.to_string()),
            (ANNOTATION_LENGTH, length.to_string()),
            (ANNOTATION_CHUNK_DIGEST, D1.to_owned()),
        ] {
            d.set_annotation(k, &v);
        }
        d
    }

    fn manifest(layers: Vec<Descriptor>) -> Manifest {
        Manifest::new(Descriptor::new(OCI_CONFIG, D1, 2), layers)
    }

    #[test]
    fn sorts_out_domain_config_and_chunks() {
        let m = manifest(vec![
            Descriptor::new(DOMAIN_XML, D1, 100),
            Descriptor::new(SARDINE_CONFIG, D1, 10),
            chunk("a.qcow2", 4, 4, 8),
            chunk("a.qcow2", 0, 4, 8),
        ]);
        let layers = ImageLayers::from_manifest(&m).unwrap();
        assert!(layers.vmconfig.is_some());
        let ImageFile::Chunked { chunks, size, .. } = &layers.files[0] else {
            panic!()
        };
        assert_eq!(*size, 8);
        assert_eq!(chunks[0].offset, 0);
    }

    #[test]
    fn refuses_gaps_overlaps_and_short_files() {
        for layers in [
            vec![chunk("a", 0, 4, 12), chunk("a", 8, 4, 12)],
            vec![chunk("a", 0, 4, 8), chunk("a", 2, 6, 8)],
            vec![chunk("a", 0, 4, 8)],
        ] {
            let mut all = vec![Descriptor::new(DOMAIN_XML, D1, 1)];
            all.extend(layers);
            assert!(ImageLayers::from_manifest(&manifest(all)).is_err());
        }
    }

    fn header(name: &str, size: u64) -> Descriptor {
        file_header_layer(D1, name, FileRole::Disk, size)
    }

    fn sparse_chunk(offset: u64, length: u64) -> Descriptor {
        sparse_chunk_layer(&sardine_disk::chunked::PackedChunk {
            offset,
            length,
            digest: Digest::parse(D1).unwrap(),
            blob_digest: Digest::parse(D2).unwrap(),
            blob_size: 10,
        })
    }

    fn v2(files: Vec<Descriptor>) -> Result<ImageLayers, ImageError> {
        let mut layers = vec![Descriptor::new(DOMAIN_XML, D1, 1)];
        layers.extend(files);
        let mut m = manifest(layers);
        set_format_version(&mut m);
        ImageLayers::from_manifest(&m)
    }

    #[test]
    fn version_2_files_are_their_headers_and_the_chunks_with_data() {
        let layers = v2(vec![
            header("big.raw", 1 << 40),
            sparse_chunk(5 << 30, 16),
            sparse_chunk(0, 16),
            header("empty.raw", 1 << 30),
            header("nvram.fd", 8),
            sparse_chunk(0, 8),
        ])
        .unwrap();
        let files: Vec<(&str, u64, Vec<u64>, bool)> = layers
            .files
            .iter()
            .map(|f| match f {
                ImageFile::Chunked {
                    name,
                    size,
                    chunks,
                    sparse,
                    ..
                } => (
                    name.as_str(),
                    *size,
                    chunks.iter().map(|c| c.offset).collect(),
                    *sparse,
                ),
                ImageFile::Legacy { .. } => panic!(),
            })
            .collect();
        assert_eq!(
            files,
            vec![
                ("big.raw", 1 << 40, vec![0, 5 << 30], true),
                ("empty.raw", 1 << 30, vec![], true),
                ("nvram.fd", 8, vec![0], true),
            ]
        );
    }

    #[test]
    fn version_2_refuses_overlaps_overruns_orphans_and_twins() {
        for files in [
            vec![header("a", 100), sparse_chunk(0, 20), sparse_chunk(10, 20)],
            vec![header("a", 100), sparse_chunk(90, 20)],
            vec![header("a", 100), sparse_chunk(10, 0)],
            vec![sparse_chunk(0, 10), header("a", 100)],
            vec![header("a", 100), header("a", 100)],
            vec![chunk("a", 0, 100, 100), sparse_chunk(0, 10)],
            vec![header("a", 100), chunk("a", 0, 100, 100)],
            vec![header("a", MAX_FILE_SIZE + 1)],
        ] {
            assert!(v2(files.clone()).is_err(), "{files:?}");
        }
    }

    #[test]
    fn version_2_chunk_annotations_are_checked() {
        for value in [
            "0 16",
            "0 16 sha256:1 x",
            "x 16 sha256:1",
            "0 16 sha256:zz",
            "0 9999999999999 sha256:1111111111111111111111111111111111111111111111111111111111111111",
        ] {
            let mut layer = sparse_chunk(0, 16);
            layer.set_annotation(ANNOTATION_CHUNK, value);
            assert!(v2(vec![header("a", 1 << 50), layer]).is_err(), "{value}");
        }
    }

    #[test]
    fn newer_format_versions_are_refused_and_version_1_images_have_none() {
        let mut m = manifest(vec![
            Descriptor::new(DOMAIN_XML, D1, 1),
            chunk("a", 0, 1, 1),
        ]);
        ImageLayers::from_manifest(&m).unwrap();
        for (version, ok) in [("1", true), ("2", true), ("3", false), ("x", false)] {
            m.annotations
                .get_or_insert_default()
                .insert(ANNOTATION_FORMAT.to_owned(), version.to_owned());
            let result = ImageLayers::from_manifest(&m);
            assert_eq!(result.is_ok(), ok, "{version}");
        }
    }

    #[test]
    fn layers_add_at_most_the_bytes_the_estimate_counts() {
        let mut layers = vec![Descriptor::new(DOMAIN_XML, D1, u64::MAX)];
        let empty = manifest(layers.clone()).to_json().len() as u64;
        let longest = sardine_disk::chunked::PackedChunk {
            offset: u64::MAX,
            length: u64::MAX,
            digest: Digest::parse(D1).unwrap(),
            blob_digest: Digest::parse(D2).unwrap(),
            blob_size: u64::MAX,
        };
        layers.push(sparse_chunk_layer(&longest));
        let one_chunk = manifest(layers.clone()).to_json().len() as u64;
        assert!(
            one_chunk - empty <= MAX_CHUNK_LAYER_BYTES,
            "{}",
            one_chunk - empty
        );
        let name = "n".repeat(255);
        layers.push(file_header_layer(D1, &name, FileRole::Initrd, u64::MAX));
        let with_header = manifest(layers.clone()).to_json().len() as u64;
        assert!(
            with_header - one_chunk <= MAX_HEADER_LAYER_BYTES,
            "{}",
            with_header - one_chunk
        );
        let mut versioned = manifest(layers);
        set_format_version(&mut versioned);
        assert!(
            versioned.to_json().len() as u64 - with_header
                + manifest(vec![]).to_json().len() as u64
                <= MANIFEST_BASE_BYTES
        );
    }

    #[test]
    fn refuses_path_traversal_names() {
        for name in [
            "../etc/passwd",
            "a/b",
            ".hidden",
            "",
            "x\0y",
            "/abs",
            "nbd:127.0.0.1:10809",
            "json:{}",
            "-o",
        ] {
            let all = vec![Descriptor::new(DOMAIN_XML, D1, 1), chunk(name, 0, 1, 1)];
            let err = ImageLayers::from_manifest(&manifest(all)).unwrap_err();
            assert!(
                matches!(err, ImageError::UnsafeFileName { .. }),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn refuses_missing_domain_unknown_types_and_huge_xml() {
        assert!(ImageLayers::from_manifest(&manifest(vec![chunk("a", 0, 1, 1)])).is_err());
        let unknown = vec![
            Descriptor::new(DOMAIN_XML, D1, 1),
            Descriptor::new("text/plain", D1, 1),
        ];
        assert!(ImageLayers::from_manifest(&manifest(unknown)).is_err());
        let huge = vec![Descriptor::new(DOMAIN_XML, D1, 1 << 40)];
        assert!(ImageLayers::from_manifest(&manifest(huge)).is_err());
    }

    #[test]
    fn layers_without_media_type_are_refused_with_a_reason() {
        let mut untyped = Descriptor::new("", D2, 1);
        untyped.media_type = None;
        let err = ImageLayers::from_manifest(&manifest(vec![
            Descriptor::new(DOMAIN_XML, D1, 1),
            untyped,
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("no mediaType"), "{err}");
    }

    #[test]
    fn groups_legacy_pieces_by_chunk_parameter() {
        let m = manifest(vec![
            Descriptor::new(DOMAIN_XML, D1, 1),
            Descriptor::new("application/x-qemu-disk+gzip", D1, 1),
            Descriptor::new("application/x-qemu-disk+gzip;chunk=1", D1, 1),
            Descriptor::new("application/x-qemu-disk+gzip", D2, 1),
        ]);
        let layers = ImageLayers::from_manifest(&m).unwrap();
        assert_eq!(layers.files.len(), 2);
        let ImageFile::Legacy { pieces, .. } = &layers.files[0] else {
            panic!()
        };
        assert_eq!(pieces.len(), 2);
    }

    #[test]
    fn manifest_parse_rejects_garbage() {
        assert!(parse_manifest(b"{").is_err());
        assert!(
            parse_manifest(br#"{"schemaVersion":1,"config":{"digest":"x","size":1},"layers":[]}"#)
                .is_err()
        );
        let bad_digest = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:zz","size":1},"layers":[]}"#;
        assert!(parse_manifest(bad_digest).is_err());
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1},"layers":[]}"#;
        assert!(parse_manifest(index).is_err());
    }

    #[test]
    fn maps_architectures_and_oses() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("riscv64"), "riscv64");
        assert_eq!(
            go_os(r#"<libosinfo:os id="http://microsoft.com/win/10"/>"#),
            "windows"
        );
        assert_eq!(
            go_os(r#"<libosinfo:os id="http://freebsd.org/freebsd/13.1"/>"#),
            "freebsd"
        );
        assert_eq!(go_os("<domain/>"), "linux");
    }
}
