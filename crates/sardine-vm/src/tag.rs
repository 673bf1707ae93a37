//! `sarde tag`: another name for an image of the local store, as `docker tag` gives one.
//!
//! The target repository gets the image's blobs as hard links from the store's pool (so a tag
//! costs no space), then a tag pointing at the same manifest: both names have the same manifest
//! digest and image ID. The target's lock is held from the first blob to the tag, so garbage
//! collection cannot remove blobs that are not referenced yet.

use sardine_oci::Digest;
use sardine_oci::layout::{Repo, Store};
use sardine_oci::manifest::Descriptor;
use sardine_oci::reference::Reference;

use crate::error::ImageError;
use crate::store::LocalImage;

/// What [`tag`] made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tagged {
    /// The new name, as `repository:tag`.
    pub reference: String,
    /// The manifest digest both names share.
    pub manifest_digest: Digest,
}

/// Gives the local image `source` the name `target` (a tag; replacing what that tag named).
pub fn tag(store: &Store, source: &Reference, target: &Reference) -> Result<Tagged, ImageError> {
    if target.digest().is_some() {
        return Err(ImageError::Unsupported {
            what: format!("{target} names a digest: a tag is a name (REPOSITORY[:TAG])"),
        });
    }
    let image = LocalImage::open(store, source)?;
    let manifest_size = fs_err::metadata(image.repo.blob_path(&image.manifest_digest))?.len();
    let destination = store.repo(target.name())?;
    destination.init()?;
    let _lock = destination.lock()?;
    let manifest = Descriptor::new(
        sardine_oci::media_types::OCI_MANIFEST,
        &image.manifest_digest,
        manifest_size,
    );
    for blob in std::iter::once(&image.manifest.config)
        .chain(&image.manifest.layers)
        .chain(std::iter::once(&manifest))
    {
        link_blob(&image.repo, &destination, blob)?;
    }
    let media_type = image
        .manifest
        .media_type
        .as_deref()
        .unwrap_or(sardine_oci::media_types::OCI_MANIFEST);
    let tag = target.tag().unwrap_or("latest");
    destination.set_tag(&image.manifest_digest, manifest_size, media_type, Some(tag))?;
    tracing::info!("tagged {source} as {}:{tag}", target.name());
    Ok(Tagged {
        reference: format!("{}:{tag}", target.name()),
        manifest_digest: image.manifest_digest,
    })
}

/// Makes `blob` of `from` a blob of `to`: a hard link from the pool, else (a file system
/// without hard links) a verified copy.
fn link_blob(from: &Repo, to: &Repo, blob: &Descriptor) -> Result<(), ImageError> {
    let digest = blob.valid_digest()?;
    if to.has_blob(&digest) || to.link_pooled_blob(&digest, blob.size)? {
        return Ok(());
    }
    from.verify_blob(&digest)?;
    let temp = to.store().temp_dir()?.join(format!(
        "tag-{}-{}.partial",
        digest.hex(),
        std::process::id()
    ));
    fs_err::copy(from.blob_path(&digest), &temp)?;
    fs_err::File::open(&temp)?.sync_all()?;
    to.commit_blob(&temp, &digest)?;
    Ok(())
}
