//! Unique names for test resources, so tests can run in parallel and clean up after themselves.

use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every libvirt domain and file the test bed creates; leftovers are easy to spot.
pub const PREFIX: &str = "sardine-test";

/// Returns `sardine-test-<label>-<pid>-<n>-<random>`: unique across threads and processes.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random: u32 = rand::random::<u32>() & 0xffff;
    format!("{PREFIX}-{label}-{}-{n}-{random:04x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let a = unique_name("vm");
        let b = unique_name("vm");
        assert_ne!(a, b);
        assert!(a.starts_with("sardine-test-vm-"));
    }
}
