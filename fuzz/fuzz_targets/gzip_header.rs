//! The legacy (sardinecake 0.4.2) gzip header reader and layer media type parser: never a
//! panic, and a parsed header never claims more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sardine_disk::legacy::{parse_gzip_header, parse_media_type};
use sardine_disk::names::check_file_name;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = parse_gzip_header(data) {
        assert!(header.header_len <= data.len());
        if let Some(name) = &header.fname
            && check_file_name(name).is_ok()
        {
            assert!(!name.contains('/') && name != ".." && !name.is_empty());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_media_type(text);
    }
});
