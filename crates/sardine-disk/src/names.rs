//! Names of the files an image carries: a safe character set, by construction.
//!
//! Such a name ends up in the domain XML and in qcow2 headers, where QEMU and libvirt read it.
//! QEMU reads a name with a `:` before any `/` as a protocol (`nbd:127.0.0.1:10809`,
//! `json:{...}`, `http://…`, `file:/etc/shadow`), a name starting with `-` could be taken for
//! an option, and a name with `/` or a leading `.` leaves or hides in the VM's directory. So
//! instead of refusing what is known to be dangerous, only names made of letters, digits and
//! `.`, `_`, `+`, `-` are accepted, not starting with `.` or `-`, of at most
//! [`MAX_FILE_NAME_LEN`] bytes. The same check applies at export (a VM's file with another
//! name must be renamed first) and at import, in the chunked and the legacy formats.

use crate::DiskError;

/// The longest file name accepted, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Whether `name` is a safe name for a file of an image (see the module documentation).
pub fn is_safe_file_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-');
    name.len() <= MAX_FILE_NAME_LEN
        && name.bytes().all(allowed)
        && name
            .bytes()
            .next()
            .is_some_and(|first| first != b'.' && first != b'-')
}

/// Checks that `name` is a safe name for a file of an image.
pub fn check_file_name(name: &str) -> Result<(), DiskError> {
    if is_safe_file_name(name) {
        return Ok(());
    }
    Err(DiskError::UnsafeFileName {
        name: name.escape_debug().to_string(),
    })
}

/// Whether QEMU reads `name`, given as a file name, as a protocol or a JSON definition
/// instead: a `:` before the first `/` (QEMU's `path_has_protocol`).
pub fn qemu_reads_as_protocol(name: &str) -> bool {
    name.find([':', '/'])
        .is_some_and(|pos| name.as_bytes()[pos] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_safe() {
        for name in [
            "disk.qcow2",
            "disk-1.qcow2",
            "base-disk.qcow2",
            "OVMF_VARS.fd",
            "vmlinuz",
            "initrd.img",
            "a..b",
            "c++",
            "0",
        ] {
            assert!(is_safe_file_name(name), "{name}");
        }
        assert!(is_safe_file_name(&"a".repeat(MAX_FILE_NAME_LEN)));
    }

    #[test]
    fn protocol_json_path_option_and_hidden_names_are_not() {
        for name in [
            "nbd:127.0.0.1:10809",
            r#"json:{"driver":"file","filename":"/etc/shadow"}"#,
            "http://example.com/x",
            "ssh:host",
            "file:/etc/shadow",
            "/etc/shadow",
            "../x",
            "a/b",
            ".hidden",
            ".",
            "..",
            "-o",
            "",
            "x\0y",
            "x\ny",
            "a b",
            "a,b",
            "é.qcow2",
            "a\\b",
        ] {
            assert!(!is_safe_file_name(name), "{name:?}");
            assert!(check_file_name(name).is_err(), "{name:?}");
        }
        assert!(!is_safe_file_name(&"a".repeat(MAX_FILE_NAME_LEN + 1)));
    }

    #[test]
    fn protocols_are_recognised_as_qemu_does() {
        assert!(qemu_reads_as_protocol("nbd:127.0.0.1:10809"));
        assert!(qemu_reads_as_protocol("json:{}"));
        assert!(qemu_reads_as_protocol("http://x/y"));
        assert!(!qemu_reads_as_protocol("/vms/sha256:abc/disk.qcow2"));
        assert!(!qemu_reads_as_protocol("sub/a:b"));
        assert!(!qemu_reads_as_protocol("disk.qcow2"));
    }
}
