//! Manifest, index, image config and sardine VM config JSON from a registry or store, and the
//! layer sorting (`ImageLayers::from_manifest`) that reads the chunk annotations: never a
//! panic, and whatever is accepted has plain file names and chunks that tile each file
//! (format version 2: that lie within it, in order, without overlaps).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sardine_vm::format::{ImageConfig, ImageFile, ImageLayers, parse_manifest, plain_file_name};

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = parse_manifest(data)
        && let Ok(layers) = ImageLayers::from_manifest(&manifest)
    {
        for file in &layers.files {
            if let ImageFile::Chunked {
                name,
                size,
                chunks,
                sparse,
                ..
            } = file
            {
                assert!(plain_file_name(name).is_ok(), "accepted file name {name:?}");
                if *sparse {
                    let mut next = 0;
                    for chunk in chunks {
                        assert!(chunk.offset >= next && chunk.length > 0, "{name}: overlap");
                        next = chunk.offset + chunk.length;
                    }
                    assert!(next <= *size, "chunks of {name} run past it");
                } else {
                    let covered: u64 = chunks.iter().map(|c| c.length).sum();
                    assert_eq!(covered, *size, "chunks of {name} do not tile it");
                }
            }
        }
    }
    let _ = serde_json::from_slice::<sardine_oci::manifest::Index>(data);
    let _ = serde_json::from_slice::<ImageConfig>(data);
    let _ = sardine_vm::vmconfig::VmConfig::parse(data, "fuzz");
});
