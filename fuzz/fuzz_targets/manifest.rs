//! Manifest, index, image config and sardine VM config JSON from a registry or store, and the
//! layer sorting (`ImageLayers::from_manifest`) that reads the chunk annotations: never a
//! panic, and whatever is accepted has plain file names and chunks that tile each file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sardine_vm::format::{ImageConfig, ImageFile, ImageLayers, parse_manifest, plain_file_name};

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = parse_manifest(data)
        && let Ok(layers) = ImageLayers::from_manifest(&manifest)
    {
        for file in &layers.files {
            if let ImageFile::Chunked {
                name, size, chunks, ..
            } = file
            {
                assert!(plain_file_name(name).is_ok(), "accepted file name {name:?}");
                let covered: u64 = chunks.iter().map(|c| c.length).sum();
                assert_eq!(covered, *size, "chunks of {name} do not tile it");
            }
        }
    }
    let _ = serde_json::from_slice::<sardine_oci::manifest::Index>(data);
    let _ = serde_json::from_slice::<ImageConfig>(data);
    let _ = sardine_vm::vmconfig::validate(data, "fuzz");
});
