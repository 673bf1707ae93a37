//! Test data: pseudo-random bytes and files (reproducible from a seed, or fresh), and the
//! `sha256:<hex>` digests of bytes and files.
//!
//! The helpers panic on I/O errors, naming the file: they only ever run inside tests.

use std::io::Write as _;
use std::path::Path;

use sha2::Digest as _;

/// How much a file helper reads or writes at a time.
const BUFFER: usize = 1 << 20;

/// Pseudo-random bytes (xorshift64*): incompressible, reproducible from the seed, fast.
pub struct Noise(u64);

impl Noise {
    /// The stream of `seed` (any value; zero is made odd).
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// The next `len` bytes of the stream.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.fill(&mut buf);
        buf
    }
}

/// `len` pseudo-random bytes, the same for the same seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    Noise::new(seed).bytes(len)
}

/// `len` pseudo-random bytes from a fresh random seed: different on every call.
pub fn random_bytes(len: usize) -> Vec<u8> {
    noise(rand::random(), len)
}

/// Writes `size` pseudo-random bytes of the stream of `seed` to `path` (created or truncated).
pub fn noise_file(path: &Path, size: u64, seed: u64) {
    let mut noise = Noise::new(seed);
    let mut file = fs_err::File::create(path).unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; BUFFER];
    let mut left = size;
    while left > 0 {
        let n = left.min(BUFFER as u64) as usize;
        noise.fill(&mut buf[..n]);
        file.write_all(&buf[..n]).unwrap_or_else(|e| panic!("{e}"));
        left -= n as u64;
    }
}

/// `sha256:<hex>` of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `sha256:<hex>` of the file `path`, streamed.
pub fn file_digest(path: &Path) -> String {
    let mut file = fs_err::File::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap_or_else(|e| panic!("{e}"));
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_reproducible_and_differs_by_seed() {
        assert_eq!(noise(3, 100), noise(3, 100));
        assert_ne!(noise(3, 100), noise(4, 100));
        assert_ne!(random_bytes(100), random_bytes(100));
    }

    #[test]
    fn noise_file_holds_the_stream_and_file_digest_matches_digest_of() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise");
        noise_file(&path, (BUFFER + 3) as u64, 9);
        let data = fs_err::read(&path).unwrap();
        assert_eq!(data, noise(9, BUFFER + 3));
        assert_eq!(file_digest(&path), digest_of(&data));
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
