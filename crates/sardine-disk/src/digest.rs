//! sha256 digests in the OCI form `sha256:<hex>`, and a reader that hashes what passes through it.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::DiskError;

/// The prefix of every digest this crate writes or accepts.
const PREFIX: &str = "sha256:";

/// Formats a finished hash as `sha256:<hex>`.
pub(crate) fn format(hasher: Sha256) -> String {
    format!("{PREFIX}{}", hex::encode(hasher.finalize()))
}

/// The digest of a byte slice.
pub(crate) fn of(bytes: &[u8]) -> String {
    format(Sha256::new_with_prefix(bytes))
}

/// Checks that `digest` is `sha256:` followed by 64 lowercase hex digits.
pub(crate) fn validate(digest: &str) -> Result<(), DiskError> {
    let ok = digest.strip_prefix(PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(DiskError::InvalidDigest {
            digest: digest.to_owned(),
        })
    }
}

/// A reader that feeds everything it reads into a sha256 and counts the bytes.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the input (so the hash covers all of it) and returns its digest and byte count.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn validate_accepts_only_lowercase_sha256() {
        validate(&of(b"x")).unwrap();
        assert!(validate("sha256:abc").is_err());
        assert!(validate(&of(b"x").to_uppercase()).is_err());
        assert!(validate(&of(b"x").replace("sha256", "sha512")).is_err());
        assert!(validate(&format!("sha256:{}", "g".repeat(64))).is_err());
    }

    #[test]
    fn hashing_reader_hashes_everything_even_unread_rest() {
        let mut reader = HashingReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        reader.read_exact(&mut first).unwrap();
        let (digest, count) = reader.finish().unwrap();
        assert_eq!(digest, of(b"hello world"));
        assert_eq!(count, 11);
    }
}
