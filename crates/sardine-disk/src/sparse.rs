//! Sparse files: finding the data segments of a file, writing only non-zero blocks, copying with holes.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Granularity of hole detection when writing: a block of this many zero bytes is left as a hole.
pub const HOLE_BLOCK: usize = 4096;

/// Buffer size for sequential copies.
const COPY_BUFFER: usize = 4 << 20;

/// The data segments `(offset, length)` of an open file, in order, found with `SEEK_DATA`/`SEEK_HOLE`.
///
/// Everything outside the segments reads as zeros. On filesystems without hole support the whole
/// file is one segment. Moves the file's seek position (use positioned reads afterwards).
pub fn data_segments<F: AsRawFd>(file: &F) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let size = seek(fd, 0, libc::SEEK_END)?;
    let mut segments = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match seek(fd, pos, libc::SEEK_DATA) {
            Ok(data) => data,
            Err(err) if err.raw_os_error() == Some(libc::ENXIO) => break,
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => return Ok(vec![(0, size)]),
            Err(err) => return Err(err),
        };
        let hole = seek(fd, data, libc::SEEK_HOLE)?.min(size);
        if hole <= data {
            break;
        }
        segments.push((data, hole - data));
        pos = hole;
    }
    Ok(segments)
}

/// `lseek` with error conversion.
fn seek(fd: std::os::fd::RawFd, offset: u64, whence: libc::c_int) -> io::Result<u64> {
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: lseek on a valid, borrowed file descriptor has no memory-safety requirements.
    let result = unsafe { libc::lseek(fd, offset, whence) };
    u64::try_from(result).map_err(|_| io::Error::last_os_error())
}

/// The bytes a file occupies on disk (`st_blocks * 512`).
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    Ok(fs_err::metadata(path)?.blocks() * 512)
}

/// Whether every byte of `buf` is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    // OR-fold fixed-size blocks (vectorised by the compiler), stopping at the first non-zero block.
    let mut blocks = buf.chunks_exact(256);
    let blocks_zero = blocks.by_ref().all(|block| {
        block.chunks_exact(8).fold(0u64, |acc, word| {
            acc | u64::from_ne_bytes(word.try_into().unwrap_or_default())
        }) == 0
    });
    blocks_zero && blocks.remainder().iter().all(|&b| b == 0)
}

/// Writes `buf` at `offset`, skipping [`HOLE_BLOCK`]-sized all-zero blocks (measured from the start of
/// `buf`) so they stay holes. The file must read as zeros where nothing is written (freshly created and
/// extended with `set_len`). Returns the number of bytes actually written.
pub fn write_sparse_at<F: FileExt>(file: &F, offset: u64, buf: &[u8]) -> io::Result<u64> {
    let mut written = 0u64;
    let mut run_start: Option<usize> = None;
    for (index, block) in buf.chunks(HOLE_BLOCK).enumerate() {
        let start = index * HOLE_BLOCK;
        match (is_zero(block), run_start) {
            (true, Some(run)) => {
                file.write_all_at(&buf[run..start], offset + run as u64)?;
                written += (start - run) as u64;
                run_start = None;
            }
            (false, None) => run_start = Some(start),
            _ => {}
        }
    }
    if let Some(run) = run_start {
        file.write_all_at(&buf[run..], offset + run as u64)?;
        written += (buf.len() - run) as u64;
    }
    Ok(written)
}

/// Asks the kernel to start writing `[offset, offset + len)` of `file` back to disk, without waiting.
///
/// Unpacking calls it after every chunk, so the disk writes while the next chunks decompress and the
/// final fsync has little left to do. Only a hint: errors are ignored (the fsync reports real ones).
pub fn start_writeback<F: AsRawFd>(file: &F, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: sync_file_range on a valid, borrowed file descriptor has no memory-safety requirements.
    let _ignored = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Copies `src` to a new file `dst` (which must not exist), keeping holes: only the data segments of
/// `src` are read, and zero blocks within them are not written. Returns the bytes written.
pub fn copy_sparse(src: &Path, dst: &Path) -> io::Result<u64> {
    let input = fs_err::File::open(src)?;
    let size = input.metadata()?.len();
    let segments = data_segments(&input)?;
    let output = fs_err::File::create_new(dst)?;
    let result = copy_segments(&input, &output, size, &segments).and_then(|written| {
        output.sync_all()?;
        Ok(written)
    });
    if result.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ignored = fs_err::remove_file(dst);
    }
    result
}

/// Copies the given segments from `input` to `output` and sets the output's length.
fn copy_segments(
    input: &fs_err::File,
    output: &fs_err::File,
    size: u64,
    segments: &[(u64, u64)],
) -> io::Result<u64> {
    use fs_err::os::unix::fs::FileExt as _;
    output.set_len(size)?;
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut written = 0;
    for &(start, len) in segments {
        let mut pos = start;
        let end = start + len;
        while pos < end {
            let n = usize::try_from(end - pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            input.read_exact_at(&mut buf[..n], pos)?;
            written += write_sparse_at(output.file(), pos, &buf[..n])?;
            pos += n as u64;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn is_zero_finds_a_single_set_byte_anywhere() {
        for len in [0usize, 1, 7, 255, 256, 257, 4096, 10_000] {
            let mut buf = vec![0u8; len];
            assert!(is_zero(&buf), "len {len}");
            for pos in [0, len / 2, len.saturating_sub(1)] {
                if len > 0 {
                    buf[pos] = 1;
                    assert!(!is_zero(&buf), "len {len} pos {pos}");
                    buf[pos] = 0;
                }
            }
        }
    }

    #[test]
    fn data_segments_of_a_sparse_file() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(10 << 20).unwrap();
        file.write_all_at(&[1u8; 8192], 4 << 20).unwrap();
        let segments = data_segments(&file).unwrap();
        let covered: u64 = segments.iter().map(|s| s.1).sum();
        assert!(
            segments
                .iter()
                .any(|&(o, l)| o <= 4 << 20 && o + l >= (4 << 20) + 8192),
            "{segments:?}"
        );
        assert!(covered < 10 << 20, "holes not detected: {segments:?}");
    }

    #[test]
    fn data_segments_of_empty_and_dense_files() {
        let mut file = tempfile::tempfile().unwrap();
        assert!(data_segments(&file).unwrap().is_empty());
        file.write_all(&[5u8; 1000]).unwrap();
        assert_eq!(data_segments(&file).unwrap(), vec![(0, 1000)]);
    }

    #[test]
    fn write_sparse_at_skips_zero_blocks() {
        let file = tempfile::tempfile().unwrap();
        let mut buf = vec![0u8; 4 * HOLE_BLOCK + 10];
        buf[HOLE_BLOCK + 3] = 9;
        buf[4 * HOLE_BLOCK + 9] = 7;
        file.set_len(100_000).unwrap();
        let written = write_sparse_at(&file, 1000, &buf).unwrap();
        assert_eq!(written, HOLE_BLOCK as u64 + 10);
        let mut back = vec![0u8; buf.len()];
        file.read_exact_at(&mut back, 1000).unwrap();
        assert_eq!(back, buf);
    }

    #[test]
    fn copy_sparse_keeps_content_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let file = std::fs::File::create(&src).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all_at(b"start", 0).unwrap();
        file.write_all_at(&[3u8; 100_000], 20 << 20).unwrap();
        drop(file);
        let dst = dir.path().join("dst");
        copy_sparse(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        assert!(allocated_bytes(&dst).unwrap() <= allocated_bytes(&src).unwrap() + 64 * 1024);
        assert!(copy_sparse(&src, &dst).is_err(), "must not overwrite");
    }
}
