//! Image references, tags and digests (from command lines, configuration files and CI jobs):
//! never a panic, and a parsed reference parses again from its own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sardine_oci::reference::{Reference, validate_digest, validate_tag};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = Reference::parse(text) {
        let again = reference.to_string();
        assert!(
            Reference::parse(&again).is_ok(),
            "{text:?} parses, its text {again:?} does not"
        );
        let _ = reference.registry();
        let _ = reference.repository();
    }
    let _ = validate_tag(text);
    let _ = validate_digest(text);
});
