//! The qcow2 header parser (used on every disk file an image carries): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sardine_disk::qcow2::parse_header(data);
});
