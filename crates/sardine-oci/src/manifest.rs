//! Lenient serde types for OCI descriptors, image manifests and image indexes (`index.json`).
//!
//! These are deliberately more forgiving than `oci-spec`'s types: sardinecake 0.4.2 writes layer
//! descriptors *without* `mediaType` when libmagic does not know a file type (W21), and old or
//! foreign `index.json` files may carry entries without a digest (W19). Unknown keys are kept in
//! `extra` so that rewriting a file written by another tool does not lose anything.
//! Annotations are ordered maps, so serialising the same value always gives the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::media_types;
use crate::{Digest, InvalidDigest};

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content; 0.4.2 omits it for disk layers of unknown type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// `sha256:<hex>`; empty if the descriptor had none (such entries are ignored, not fatal).
    #[serde(default)]
    pub digest: String,
    /// The size of the content in bytes.
    #[serde(default)]
    pub size: u64,
    /// Alternative download locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations such as `org.opencontainers.image.ref.name` (the tag in `index.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The platform of a manifest in an index, kept as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Value>,
    /// The artifact type of an artifact manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Any other keys, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// A descriptor with just a media type, digest and size.
    pub fn new(media_type: &str, digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: Some(media_type.to_owned()),
            digest: digest.to_owned(),
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            extra: Map::new(),
        }
    }

    /// The digest, checked: the way every use of a descriptor's digest starts.
    pub fn valid_digest(&self) -> Result<Digest, InvalidDigest> {
        Digest::parse(&self.digest)
    }

    /// The blob this descriptor points at, with its digest checked.
    pub fn blob_ref(&self) -> Result<BlobRef, InvalidDigest> {
        Ok(BlobRef {
            digest: self.valid_digest()?,
            size: self.size,
        })
    }

    /// The media type, or the empty string if there is none.
    pub fn media_type(&self) -> &str {
        self.media_type.as_deref().unwrap_or("")
    }

    /// The value of the annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The tag of an `index.json` entry (its `org.opencontainers.image.ref.name`).
    pub fn ref_name(&self) -> Option<&str> {
        self.annotation(media_types::ANNOTATION_REF_NAME)
    }

    /// Sets the annotation `key` to `value`.
    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.annotations
            .get_or_insert_default()
            .insert(key.to_owned(), value.to_owned());
    }
}

/// A blob a manifest refers to, by checked digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes, as the descriptor declares it.
    pub size: u64,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, for artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image configuration; its digest is the image ID.
    pub config: Descriptor,
    /// The layers in order (for sardine images: domain XML, optional VM config, disk chunks).
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Any other keys, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Manifest {
    /// A new OCI image manifest for `config` and `layers`.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
            extra: Map::new(),
        }
    }

    /// The canonical bytes of this manifest: 2-space indented JSON, no trailing newline.
    /// The same value always gives the same bytes, so the digest is reproducible.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }
}

/// An image index; also the format of a layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    #[serde(default = "schema_version_2")]
    pub schema_version: u32,
    /// The index's own media type (0.4.2 writes none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests, in order; in `index.json` the tag is an annotation on each.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Any other keys, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Index {
    /// An empty OCI image index.
    pub fn new() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_owned()),
            manifests: Vec::new(),
            annotations: None,
            extra: Map::new(),
        }
    }

    /// 2-space indented JSON, no trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

fn schema_version_2() -> u32 {
    2
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Invariant: these types only hold strings, numbers and JSON values with string keys, and the
    // output goes to memory, so serialisation cannot fail.
    serde_json::to_vec_pretty(value).expect("serialising plain JSON data to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_0_4_2_manifest_with_missing_media_type() {
        let json = r#"{"config":{"digest":"sha256:aa","mediaType":"application/vnd.oci.image.config.v1+json","size":3},
            "layers":[{"digest":"sha256:bb","mediaType":"application/vnd.libvirt.domain.config+xml","size":10},
                      {"digest":"sha256:cc","size":5}],
            "mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#;
        let manifest: Manifest = serde_json::from_str(json).unwrap();
        assert_eq!(manifest.layers.len(), 2);
        assert_eq!(manifest.layers[1].media_type, None);
        assert_eq!(manifest.config.digest, "sha256:aa");
    }

    #[test]
    fn keeps_unknown_keys_and_entries_without_digest() {
        let json = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","size":1,"future":true},
            {"digest":"sha256:aa","size":2,"annotations":{"org.opencontainers.image.ref.name":"t"}}],"foo":"bar"}"#;
        let index: Index = serde_json::from_str(json).unwrap();
        assert_eq!(index.manifests[0].digest, "");
        assert_eq!(index.manifests[1].ref_name(), Some("t"));
        let again: Value = serde_json::from_slice(&index.to_json()).unwrap();
        assert_eq!(again["foo"], "bar");
        assert_eq!(again["manifests"][0]["future"], true);
    }

    #[test]
    fn manifest_bytes_are_deterministic() {
        let mut config = Descriptor::new(media_types::OCI_CONFIG, "sha256:aa", 3);
        for key in ["z", "a", "m"] {
            config.set_annotation(key, key);
        }
        let one = Manifest::new(config.clone(), vec![]).to_json();
        let two = Manifest::new(config, vec![]).to_json();
        assert_eq!(one, two);
        let text = String::from_utf8(one).unwrap();
        assert!(text.starts_with("{\n  \"schemaVersion\": 2,"), "{text}");
        assert!(text.find("\"a\"") < text.find("\"z\""));
    }
}
