//! The checks on an image's disk files: a file name accepted as safe is never a QEMU protocol,
//! path, option or hidden name; a qcow2 header's backing link, once accepted, names a file (no
//! protocol) of format qcow2 or raw, and an undeclared format is accepted for qcow2 files only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sardine_disk::names::{is_safe_file_name, qemu_reads_as_protocol};
use sardine_disk::qcow2::{Format, check_backing_format, parse_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data)
        && is_safe_file_name(name)
    {
        assert!(!qemu_reads_as_protocol(name), "{name:?}");
        assert!(!name.contains([':', '/', '\0', ',', ' ']), "{name:?}");
        assert!(!name.starts_with(['.', '-']), "{name:?}");
    }
    let Ok(Some(header)) = parse_header(data) else {
        return;
    };
    let Ok(Some(link)) = header.backing_link() else {
        return;
    };
    assert!(!header.external_data && header.data_file.is_none());
    assert!(!qemu_reads_as_protocol(&link.name), "{:?}", link.name);
    assert!(matches!(link.format, Format::Qcow2 | Format::Raw));
    // The backing file as raw bytes, and as this very header (a qcow2 image).
    let as_raw = check_backing_format(&link, None);
    let as_qcow2 = check_backing_format(&link, Some(&header));
    assert!(as_raw.is_ok() != as_qcow2.is_ok());
    if !link.declared {
        assert!(as_raw.is_err());
    }
});
