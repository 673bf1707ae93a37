//! Helpers of the hostile-image and fault-injection tests: OCI images written by hand (so each
//! test can break exactly one thing), a test directory with a canary file, and the checks that
//! a refused import left nothing behind.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Output;

use sardine_testbed::{Noise, digest_of};
use serde_json::{Value, json};

use crate::common::Workdir;

/// The repository every test image is written to (each test has its own store).
pub const REPO: &str = "hostile";
/// Its tag.
pub const TAG: &str = "t";
/// `REPO:TAG`.
pub const IMAGE: &str = "hostile:t";

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const DOMAIN_TYPE: &str = "application/vnd.libvirt.domain.config+xml";
pub const CHUNK_TYPE: &str = "application/vnd.sardinecake.disk.chunk.v1+zstd";
pub const LEGACY_RAW_TYPE: &str = "application/octet-stream+gzip";

pub const TITLE: &str = "org.opencontainers.image.title";
pub const ROLE: &str = "org.sardinecake.file.role";
pub const FILE_SIZE: &str = "org.sardinecake.file.size";
pub const OFFSET: &str = "org.sardinecake.chunk.offset";
pub const LENGTH: &str = "org.sardinecake.chunk.length";
pub const CHUNK_DIGEST: &str = "org.sardinecake.chunk.digest";

/// A domain that the policy accepts, with one disk `disk` of driver type `format` and `extra`
/// appended to `<devices>`.
pub fn domain_xml(disk: &str, format: &str, extra: &str) -> String {
    format!(
        "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
         <name>hostile</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64'>hvm</type></os>\
         <devices><disk type='file' device='disk'><driver name='qemu' type='{format}'/>\
         <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>{extra}</devices></domain>"
    )
}

/// One layer of a hand-built image.
#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: String,
    pub blob: Vec<u8>,
    pub annotations: Vec<(String, String)>,
    /// The size written into the descriptor (default: the blob's).
    pub claimed_size: Option<u64>,
    /// Whether the blob file is written (false: a missing blob).
    pub present: bool,
    /// The digest of the uncompressed layer, for the config's `rootfs.diff_ids` (default: the
    /// blob's digest).
    pub diff_id: Option<String>,
}

impl Layer {
    pub fn new(media_type: &str, blob: Vec<u8>) -> Layer {
        Layer {
            media_type: media_type.to_owned(),
            blob,
            annotations: Vec::new(),
            claimed_size: None,
            present: true,
            diff_id: None,
        }
    }

    /// Sets (or replaces) an annotation.
    pub fn annotate(&mut self, key: &str, value: &str) {
        self.annotations.retain(|(k, _)| k != key);
        self.annotations.push((key.to_owned(), value.to_owned()));
    }

    pub fn digest(&self) -> String {
        digest_of(&self.blob)
    }

    fn descriptor(&self) -> Value {
        let mut descriptor = json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.claimed_size.unwrap_or(self.blob.len() as u64),
        });
        if !self.annotations.is_empty() {
            let map: serde_json::Map<String, Value> = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            descriptor["annotations"] = Value::Object(map);
        }
        descriptor
    }
}

/// An image built layer by layer; tests change one thing before writing it.
#[derive(Debug, Clone)]
pub struct Image {
    pub layers: Vec<Layer>,
    /// The media type of the `index.json` entry.
    pub index_media_type: String,
}

/// Where an image was written.
pub struct Written {
    /// The repository's layout directory.
    pub dir: PathBuf,
}

impl Written {
    /// The file of blob `digest`.
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

impl Image {
    /// An image with only the domain XML layer.
    pub fn new(domain_xml: &str) -> Image {
        Image {
            layers: vec![Layer::new(DOMAIN_TYPE, domain_xml.as_bytes().to_vec())],
            index_media_type: MANIFEST_TYPE.into(),
        }
    }

    /// A safe image: the domain of [`domain_xml`] and a raw disk `disk.img` of 3 chunks.
    pub fn ordinary() -> Image {
        Image::new(&domain_xml("disk.img", "raw", "")).chunked_file(
            "disk.img",
            &Noise::new(7).bytes(10_000),
            4096,
        )
    }

    /// Adds a file in the default format: zstd chunks of `chunk_size` bytes.
    pub fn chunked_file(mut self, name: &str, content: &[u8], chunk_size: usize) -> Image {
        for (i, chunk) in content.chunks(chunk_size).enumerate() {
            let compressed = zstd::encode_all(chunk, 1).unwrap_or_else(|e| panic!("{e}"));
            let mut layer = Layer::new(CHUNK_TYPE, compressed);
            layer.annotate(TITLE, name);
            layer.annotate(ROLE, "disk");
            layer.annotate(FILE_SIZE, &content.len().to_string());
            layer.annotate(OFFSET, &(i * chunk_size).to_string());
            layer.annotate(LENGTH, &chunk.len().to_string());
            layer.annotate(CHUNK_DIGEST, &digest_of(chunk));
            // What sarde's export lists in the config: the chunk's uncompressed digest.
            layer.diff_id = Some(digest_of(chunk));
            self.layers.push(layer);
        }
        self
    }

    /// Adds a file in sardinecake 0.4.2's format: one gzip member (with FNAME `fname`), one layer.
    pub fn legacy_file(mut self, fname: &str, content: &[u8]) -> Image {
        let mut encoder = flate2::GzBuilder::new()
            .filename(fname.as_bytes())
            .write(Vec::new(), flate2::Compression::fast());
        encoder.write_all(content).unwrap_or_else(|e| panic!("{e}"));
        let gzip = encoder.finish().unwrap_or_else(|e| panic!("{e}"));
        let mut layer = Layer::new(LEGACY_RAW_TYPE, gzip);
        layer.diff_id = Some(digest_of(content));
        self.layers.push(layer);
        self
    }

    /// Adds a legacy file (FNAME `fname`) of `head` followed by `fill` repeated up to `size`
    /// bytes, compressed as it is made (a deflate bomb: about 1000:1), with its real diff_id.
    pub fn legacy_bomb(mut self, fname: &str, head: &[u8], fill: u8, size: usize) -> Image {
        use sha2::Digest as _;
        let mut encoder = flate2::GzBuilder::new()
            .filename(fname.as_bytes())
            .write(Vec::new(), flate2::Compression::best());
        let mut hasher = sha2::Sha256::new();
        let block = vec![fill; 1 << 20];
        let mut left = size;
        let mut feed = |bytes: &[u8]| {
            hasher.update(bytes);
            encoder.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
        };
        feed(head);
        left -= head.len();
        while left > 0 {
            let n = left.min(block.len());
            feed(&block[..n]);
            left -= n;
        }
        let gzip = encoder.finish().unwrap_or_else(|e| panic!("{e}"));
        let mut layer = Layer::new(LEGACY_RAW_TYPE, gzip);
        layer.diff_id = Some(format!("sha256:{}", hex::encode(hasher.finalize())));
        self.layers.push(layer);
        self
    }

    /// The last layer (the one a test most often tampers with).
    pub fn last(&mut self) -> &mut Layer {
        let last = self.layers.len() - 1;
        &mut self.layers[last]
    }

    fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self
            .layers
            .iter()
            .map(|layer| layer.diff_id.clone().unwrap_or_else(|| layer.digest()))
            .collect();
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        serde_json::to_vec(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The manifest as JSON.
    pub fn manifest(&self) -> Value {
        let config = self.config();
        json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": digest_of(&config), "size": config.len()},
            "layers": self.layers.iter().map(Layer::descriptor).collect::<Vec<_>>(),
        })
    }

    /// Writes the image as `REPO:TAG` into the store at `ocidir`.
    pub fn write(&self, ocidir: &Path) -> Written {
        self.write_edited(ocidir, |manifest| {
            serde_json::to_vec_pretty(&manifest).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// Writes the image with the manifest bytes that `edit` makes of the manifest.
    pub fn write_edited(&self, ocidir: &Path, edit: impl FnOnce(Value) -> Vec<u8>) -> Written {
        let dir = ocidir.join(REPO);
        let blobs = dir.join("blobs/sha256");
        fs_err::create_dir_all(&blobs).unwrap_or_else(|e| panic!("{e}"));
        let put = |data: &[u8]| {
            let digest = digest_of(data);
            fs_err::write(blobs.join(digest.trim_start_matches("sha256:")), data)
                .unwrap_or_else(|e| panic!("{e}"));
            digest
        };
        for layer in self.layers.iter().filter(|l| l.present) {
            put(&layer.blob);
        }
        put(&self.config());
        let manifest = edit(self.manifest());
        let manifest_digest = put(&manifest);
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": self.index_media_type,
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }],
        });
        fs_err::write(
            dir.join("index.json"),
            serde_json::to_vec(&index).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        fs_err::write(
            dir.join("oci-layout"),
            br#"{"imageLayoutVersion": "1.0.0"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Written { dir }
    }
}

/// A test's directory ([`Workdir`]: `oci/` the store, `vms/` the VM directory) and a canary
/// file next to them that nothing may touch.
pub struct Env {
    work: Workdir,
    pub canary: PathBuf,
}

const CANARY_TEXT: &str = "canary: sarde must never write here\n";

impl Deref for Env {
    type Target = Workdir;

    fn deref(&self) -> &Workdir {
        &self.work
    }
}

impl Env {
    pub fn new() -> Env {
        let work = Workdir::new("hostile");
        let canary = work.path().join("canary.txt");
        fs_err::write(&canary, CANARY_TEXT).unwrap_or_else(|e| panic!("{e}"));
        Env { work, canary }
    }

    /// `sarde import IMAGE --name NAME -o VMDIR` plus `extra`.
    pub fn import(&self, name: &str, extra: &[&str]) -> Output {
        let vmdir = self.vmdir().to_string_lossy().into_owned();
        let mut args = vec!["import", IMAGE, "--name", name, "-o", &vmdir];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// [`Env::import`] without extra arguments, which must succeed; returns its output.
    pub fn import_ok(&self, name: &str) -> Output {
        let output = self.import(name, &[]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Every path below the test directory, except inside the store (relative, sorted).
    pub fn snapshot(&self) -> BTreeSet<PathBuf> {
        let mut paths = BTreeSet::new();
        walk(self.path(), self.path(), &self.ocidir(), &mut paths);
        paths
    }

    /// Imports `image` and checks that it is refused: a non-zero exit, an error that contains
    /// each of `expected` (case-insensitive), no VM defined, no file left in the VM directory but
    /// lock files, no new file anywhere else, the canary untouched. Returns stderr.
    pub fn assert_refused(&self, image: &Image, expected: &[&str]) -> String {
        image.write(&self.ocidir());
        self.assert_import_refused(expected)
    }

    /// Like [`Env::assert_refused`], for an image already in the store.
    pub fn assert_import_refused(&self, expected: &[&str]) -> String {
        self.assert_import_refused_with(&[], expected)
    }

    /// Like [`Env::assert_import_refused`], with `extra` arguments to `sarde import`.
    pub fn assert_import_refused_with(&self, extra: &[&str], expected: &[&str]) -> String {
        let name = sardine_testbed::unique_name("hostile");
        let guard = sardine_testbed::VmGuard::adopt(&name).unwrap_or_else(|e| panic!("{e:#}"));
        let domains_before = domains();
        let before = self.snapshot();
        let output = self.import(&name, extra);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "the import succeeded:\n{stderr}");
        let lower = stderr.to_lowercase();
        for fragment in expected {
            assert!(
                lower.contains(&fragment.to_lowercase()),
                "the error does not mention {fragment:?}:\n{stderr}"
            );
        }
        assert!(
            !guard.exists(),
            "{name} was defined although the import failed"
        );
        // Other tests define domains at the same time: only this import's name, or the name in
        // the image's XML, would be ours.
        let new_domains: Vec<String> = domains()
            .difference(&domains_before)
            .filter(|d| d.contains(&name) || *d == "hostile")
            .cloned()
            .collect();
        assert!(new_domains.is_empty(), "domains appeared: {new_domains:?}");
        let lock = PathBuf::from("vms").join(format!(".{name}.lock"));
        let after = self.snapshot();
        let appeared: Vec<&PathBuf> = after.difference(&before).filter(|p| **p != lock).collect();
        assert!(
            appeared.is_empty(),
            "files appeared outside the store: {appeared:?}\n{stderr}"
        );
        assert_eq!(
            fs_err::read_to_string(&self.canary).unwrap_or_default(),
            CANARY_TEXT
        );
        stderr
    }
}

fn walk(root: &Path, dir: &Path, skip: &Path, paths: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == skip {
            continue;
        }
        paths.insert(
            path.strip_prefix(root)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| path.clone()),
        );
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, skip, paths);
        }
    }
}

/// The names of all defined domains.
pub fn domains() -> BTreeSet<String> {
    let output = sardine_testbed::netns_command("virsh")
        .args([
            "-c",
            &sardine_testbed::libvirt_uri(),
            "list",
            "--all",
            "--name",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run virsh: {e}"));
    assert!(
        output.status.success(),
        "virsh list: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}
