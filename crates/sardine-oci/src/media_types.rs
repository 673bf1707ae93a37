//! Media types and annotation keys used in manifests and `index.json`.
//!
//! The sardinecake-specific strings are the ones sardinecake 0.4.2 writes; they must not change,
//! or images could no longer be exchanged with it.

/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index (a multi-platform "manifest list").
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI image configuration blob; its digest is the image ID.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A Docker schema 2 image manifest (structurally the same as [`OCI_MANIFEST`]).
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list (structurally the same as [`OCI_INDEX`]).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image configuration blob (structurally the same as [`OCI_CONFIG`]).
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The libvirt domain XML layer (always the first layer of a sardine image).
pub const DOMAIN_XML: &str = "application/vnd.libvirt.domain.config+xml";
/// The optional sardine VM configuration layer (users, services).
pub const SARDINE_CONFIG: &str = "application/vnd.sardinecake.vm.config.v1+json";

/// The `index.json` descriptor annotation that holds a tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The standard annotation for a human-readable title (for example a file name).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// Whether `media_type` names an image index or a manifest list rather than a single manifest.
pub fn is_index(media_type: &str) -> bool {
    let base = base_type(media_type);
    base == OCI_INDEX || base == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` names a single image manifest (OCI or Docker schema 2).
pub fn is_manifest(media_type: &str) -> bool {
    let base = base_type(media_type);
    base == OCI_MANIFEST || base == DOCKER_MANIFEST_V2
}

/// The media type without its `;parameters`, trimmed (`a/b+gzip;chunk=1` gives `a/b+gzip`).
pub fn base_type(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or(media_type).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_type_strips_parameters() {
        assert_eq!(
            base_type("application/x-qemu-disk+gzip;chunk=3"),
            "application/x-qemu-disk+gzip"
        );
        assert_eq!(base_type(OCI_MANIFEST), OCI_MANIFEST);
    }

    #[test]
    fn classifies_indexes_and_manifests() {
        assert!(is_index(OCI_INDEX));
        assert!(is_index(DOCKER_MANIFEST_LIST));
        assert!(!is_index(OCI_MANIFEST));
        assert!(is_manifest(DOCKER_MANIFEST_V2));
        assert!(!is_manifest(OCI_CONFIG));
    }
}
