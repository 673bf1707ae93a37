//! `sarde inspect`: what an image is — manifest, image config, sardine config, files and sizes.
//!
//! [`describe`] works on the raw documents, whichever place they come from (the local store
//! here, a registry for `--remote`), so both describe an image the same way.

use std::collections::HashSet;

use sardine_oci::Digest;
use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use serde::Serialize;

use crate::error::ImageError;
use crate::format::{self, ImageFile, ImageLayers};
use crate::store::LocalImage;

/// Everything `inspect` says about an image.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The reference asked for.
    pub reference: String,
    /// The manifest's digest (what `NAME@sha256:…` references and registries use).
    pub manifest_digest: Digest,
    /// The image ID: the config's digest (what `export` prints and base VMs are named after).
    pub id: Digest,
    /// `chunked` (sarde's format) or `legacy` (sardinecake 0.4.2's gzip layers).
    pub format: &'static str,
    /// The image config's architecture.
    pub architecture: Option<String>,
    /// The image config's OS.
    pub os: Option<String>,
    /// The image config's creation time, as written.
    pub created: Option<serde_json::Value>,
    /// The files of the VM, in manifest order.
    pub files: Vec<FileSummary>,
    /// Number of layers.
    pub layers: usize,
    /// Bytes a registry or store holds for it: manifest, config and distinct layers.
    pub compressed_size: u64,
    /// Bytes of its files unpacked (holes included); unknown for legacy files.
    pub uncompressed_size: Option<u64>,
    /// The manifest.
    pub manifest: serde_json::Value,
    /// The image config.
    pub config: serde_json::Value,
    /// The sardine config (users, services), if the image has one.
    pub sardine_config: Option<serde_json::Value>,
}

/// One file of the image.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    /// Its plain name (unknown for legacy files until unpacked).
    pub name: Option<String>,
    /// `disk`, `nvram`, `kernel`, `initrd`; the media type for legacy files.
    pub role: String,
    /// Its size unpacked (unknown for legacy files).
    pub size: Option<u64>,
    /// Bytes of its distinct blobs.
    pub compressed_size: u64,
    /// Its chunks (legacy: gzip pieces).
    pub chunks: usize,
}

/// Describes the local image `reference`.
pub fn inspect_local(store: &Store, reference: &Reference) -> Result<Inspection, ImageError> {
    let image = LocalImage::open(store, reference)?;
    let manifest = image.repo.read_blob(
        &image.manifest_digest,
        sardine_oci::layout::MAX_MANIFEST_SIZE,
    )?;
    let config = image.repo.read_blob(image.id(), format::MAX_SMALL_BLOB)?;
    describe(
        &reference.to_string(),
        &image.manifest_digest,
        &manifest,
        &config,
        image.vmconfig()?.map(|config| config.document().clone()),
    )
}

/// Describes an image from its manifest and config bytes and its sardine config.
pub fn describe(
    reference: &str,
    manifest_digest: &Digest,
    manifest_bytes: &[u8],
    config_bytes: &[u8],
    sardine_config: Option<serde_json::Value>,
) -> Result<Inspection, ImageError> {
    let manifest = format::parse_manifest(manifest_bytes)?;
    format::check_manifest(&manifest)?;
    let layers = ImageLayers::from_manifest(&manifest)?;
    let config: serde_json::Value =
        serde_json::from_slice(config_bytes).map_err(|e| ImageError::Malformed {
            what: format!("the image config is not JSON: {e}"),
        })?;
    let text = |key: &str| config.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let files: Vec<FileSummary> = layers.files.iter().map(summarise).collect();
    let legacy = layers
        .files
        .iter()
        .any(|f| matches!(f, ImageFile::Legacy { .. }));
    let distinct: HashSet<(&str, u64)> = manifest
        .layers
        .iter()
        .map(|l| (l.digest.as_str(), l.size))
        .collect();
    let compressed_size = manifest_bytes.len() as u64
        + manifest.config.size
        + distinct.iter().map(|(_, size)| size).sum::<u64>();
    Ok(Inspection {
        reference: reference.to_owned(),
        manifest_digest: manifest_digest.clone(),
        id: manifest.config.valid_digest()?,
        format: if legacy { "legacy" } else { "chunked" },
        architecture: text("architecture"),
        os: text("os"),
        created: config.get("created").cloned(),
        uncompressed_size: files.iter().map(|f| f.size).sum(),
        files,
        layers: manifest.layers.len(),
        compressed_size,
        manifest: serde_json::from_slice(manifest_bytes).unwrap_or_default(),
        config,
        sardine_config,
    })
}

fn summarise(file: &ImageFile) -> FileSummary {
    match file {
        ImageFile::Chunked {
            name,
            role,
            size,
            chunks,
            ..
        } => {
            let blobs: HashSet<(&str, u64)> = chunks
                .iter()
                .map(|c| (c.blob.digest.as_str(), c.blob.size))
                .collect();
            FileSummary {
                name: Some(name.clone()),
                role: role.as_str().to_owned(),
                size: Some(*size),
                compressed_size: blobs.iter().map(|(_, size)| size).sum(),
                chunks: chunks.len(),
            }
        }
        ImageFile::Legacy { mime, pieces } => FileSummary {
            name: None,
            role: mime.clone(),
            size: None,
            compressed_size: pieces.iter().map(|p| p.size).sum(),
            chunks: pieces.len(),
        },
    }
}
