//! The domain XML parser and the import policy: never a panic; anonymising and serialising
//! what parses works, and a domain the policy accepts still parses after serialisation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sardine_libvirt::{DomainXml, sanitize};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(domain) = DomainXml::parse(text) else {
        return;
    };
    let files = ["disk.qcow2".to_owned(), "base.qcow2".to_owned()];
    let violations = sanitize::check(&domain, &files);
    if violations.is_empty()
        && let Ok(xml) = domain.to_xml()
    {
        assert!(
            DomainXml::parse(&xml).is_ok(),
            "a checked domain does not parse after serialising:\n{xml}"
        );
    }
    let mut anonymized = domain.clone();
    anonymized.anonymize();
    let _ = sanitize::check(&anonymized, &files);
    let _ = anonymized.to_xml();
    let _ = domain.disks();
    let _ = domain.boot_files();
});
