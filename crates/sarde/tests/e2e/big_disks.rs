//! End-to-end tests of images of big sparse disks (issue 14): a 200 GiB raw disk holding 2 MiB
//! travels through a real registry as its data (a small manifest, a few layers) and comes back
//! as sparse as it left, and its clone costs nothing; an export whose manifest registries would refuse fails before any
//! work, naming the option that fixes it. No guest boots: the disk only has to be a file of a
//! domain that libvirt defines.

use fs_err::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use sardine_testbed::{Registry, RegistryAuth, VmGuard, noise};

use crate::common::{Workdir, allocated, code, text};

const GIB: u64 = 1 << 30;

/// The virtual size of the big disk.
const DISK_SIZE: u64 = 200 * GIB;

/// Where the big disk holds data: 1 MiB at its start, 1 MiB far into it.
const DATA: [(u64, usize, u64); 2] = [(0, 1 << 20, 1), (150 * GIB + (5 << 20), 1 << 20, 2)];

/// A domain with the raw disk `disk.raw` (next to the XML file) and nothing else to boot.
fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64'>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='disk.raw'/><target dev='vda' bus='virtio'/></disk>\
         </devices></domain>"
    )
}

/// Writes `dir/disk.raw` (sparse, `size` bytes, with `data` as (offset, length, noise seed))
/// and `dir/domain.xml`; returns the XML file.
fn sparse_vm(dir: &Path, size: u64, data: &[(u64, usize, u64)]) -> PathBuf {
    fs_err::create_dir_all(dir).unwrap();
    let disk = fs_err::File::create_new(dir.join("disk.raw")).unwrap();
    disk.set_len(size).unwrap();
    for &(offset, length, seed) in data {
        disk.write_all_at(&noise(seed, length), offset).unwrap();
    }
    disk.sync_all().unwrap();
    let xml = dir.join("domain.xml");
    fs_err::write(&xml, domain_xml("big")).unwrap();
    xml
}

/// The manifest of a local image: its size in bytes and its layer count.
fn manifest_of(ocidir: &Path, image: &str) -> (u64, usize) {
    let reference = Reference::parse(image).unwrap();
    let repo = Store::new(ocidir).existing_repo(reference.name()).unwrap();
    let descriptor = repo.resolve(reference.tag(), None).unwrap();
    let (bytes, manifest) = repo.read_manifest_bytes(&descriptor).unwrap();
    (bytes.len() as u64, manifest.layers.len())
}

/// `length` bytes of `path` at `offset`.
fn read_at(path: &Path, offset: u64, length: usize) -> Vec<u8> {
    let mut buf = vec![0u8; length];
    fs_err::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

#[test]
fn big_disks_a_sparse_200_gib_disk_travels_through_a_registry_as_its_data() {
    let env = Workdir::new("big-disk");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let xml = sparse_vm(&env.path().join("source"), DISK_SIZE, &DATA);
    let source = env.path().join("source/disk.raw");
    let image = format!("{}/test/big:1", registry.host());

    env.ok(&[
        "export",
        "big",
        &image,
        "--libvirtconfig",
        xml.to_str().unwrap(),
    ]);
    let (bytes, layers) = manifest_of(&env.ocidir(), &image);
    assert!(bytes <= 100 << 10, "a manifest of {bytes} bytes");
    // The domain XML, the disk's header and its two chunks with data.
    assert_eq!(layers, 4, "layers");

    env.ok(&["push", &image]);
    let fetched = env.other_store("fetched");
    env.ok_in(&fetched, &["fetch", &image]);
    assert_eq!(manifest_of(&fetched, &image), (bytes, layers));

    let guard = crate::registry::import(&env, &fetched, &image);
    let imported = env
        .vmdir()
        .join(guard.name())
        .join(guard.name())
        .join("disk.raw");
    assert_eq!(fs_err::metadata(&imported).unwrap().len(), DISK_SIZE);
    assert!(
        allocated(&imported) <= allocated(&source),
        "the import allocates {} bytes, the original {}",
        allocated(&imported),
        allocated(&source)
    );
    assert!(allocated(&imported) >= 2 << 20, "the data is not there");
    for (offset, length, seed) in DATA {
        assert!(
            read_at(&imported, offset, length) == noise(seed, length),
            "data at {offset}"
        );
    }
    assert!(read_at(&imported, 100 * GIB, 4096).iter().all(|&b| b == 0));

    // A clone is an overlay on the imported disk: it allocates (almost) nothing.
    let clone_name = sardine_testbed::unique_name("big-clone");
    let clone = VmGuard::adopt(&clone_name).unwrap();
    let clones = env.path().join("clones");
    env.ok_in(
        &fetched,
        &[
            "clone",
            guard.name(),
            &clone_name,
            "-o",
            clones.to_str().unwrap(),
        ],
    );
    assert!(clone.exists());
    let clone_bytes: u64 = walk(&clones).iter().map(|file| allocated(file)).sum();
    assert!(
        clone_bytes < 1 << 20,
        "the clone allocates {clone_bytes} bytes"
    );
}

/// The files below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn big_disks_a_manifest_registries_would_refuse_is_an_error_before_any_work() {
    let env = Workdir::new("big-manifest");
    // 64 MiB of data: 16,384 chunks of 4 KiB, a manifest of several MiB.
    let xml = sparse_vm(&env.path().join("source"), DISK_SIZE, &[(GIB, 64 << 20, 3)]);
    let refused = env.run(&[
        "export",
        "big",
        "big:1",
        "--libvirtconfig",
        xml.to_str().unwrap(),
        "--chunksize",
        "4KiB",
    ]);
    assert_ne!(code(&refused), 0);
    let message = text(&refused.stderr);
    assert!(
        message.contains("disk.raw") && message.contains("16384 chunks"),
        "{message}"
    );
    assert!(message.contains("--chunksize 16MiB"), "{message}");
    let blobs = env.ocidir().join(".sardine/blobs/sha256");
    let stored = fs_err::read_dir(&blobs).map_or(0, Iterator::count);
    assert_eq!(stored, 0, "a refused export stored blobs");

    // The default chunk size fits.
    env.ok(&[
        "export",
        "big",
        "big:1",
        "--libvirtconfig",
        xml.to_str().unwrap(),
    ]);
    let (bytes, layers) = manifest_of(&env.ocidir(), "big:1");
    assert_eq!(layers, 2 + 4, "64 MiB of data in 16 MiB chunks");
    assert!(bytes <= 100 << 10, "a manifest of {bytes} bytes");
}
