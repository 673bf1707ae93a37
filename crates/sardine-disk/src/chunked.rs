//! The chunked disk format, the default of `sarde export`: fixed-size chunks, each an independent zstd blob.
//!
//! # Encoding
//!
//! A file of `size` bytes is cut into `ceil(size / chunk_size)` chunks; chunk `i` covers the bytes
//! `[i * chunk_size, min((i + 1) * chunk_size, size))` of the file, so every chunk but the last is exactly
//! `chunk_size` bytes long ([`DEFAULT_CHUNK_SIZE`] is 16 MiB). An empty file has no chunks. Holes of a sparse
//! file are read as zeros; chunks that are all zeros are emitted like any other (they all share one blob).
//!
//! Each chunk is compressed on its own into one blob of media type [`MEDIA_TYPE_CHUNK`]: a single zstd
//! frame (RFC 8878) holding exactly the chunk's bytes, with the content size in the frame header, no
//! dictionary and no zstd checksum (the digests below cover it). Compression is single-threaded per chunk
//! at the chosen level (default 3), so the same input and zstd version always give the same blob and an
//! unchanged chunk is never stored twice. A reader must accept any valid zstd stream, including several
//! concatenated frames.
//!
//! When the sink offers a blob it already holds for a chunk's uncompressed digest and length
//! ([`BlobSink::known_chunk`]: an earlier export of the same disk), the packer uses it instead of
//! compressing the chunk, after checking the blob's own digest and that it decompresses to exactly
//! the chunk's bytes (decompressing is several times faster than compressing). Re-exporting a VM
//! whose disk changed a little costs little more than reading it.
//!
//! Each chunk is described by:
//! * `offset`, `length`: the byte range of the file it covers;
//! * `digest`: `sha256:<hex>` of the *uncompressed* chunk bytes;
//! * `blob_digest`, `blob_size`: `sha256:<hex>` and size of the *compressed* blob (its OCI descriptor).
//!
//! The file's `size` is stored next to its chunk list. On unpacking, the chunks must tile `[0, size)`
//! exactly (no gap, no overlap, no empty chunk, nothing past `size`); every blob's size and every chunk's
//! uncompressed length and digest are verified, and a chunk that decompresses to more than `length` bytes is
//! rejected before anything past its range is written. A blob's own digest was verified when it entered the
//! store (fetch verifies every blob, export computes them); unpacking hashes a blob again only when its chunk
//! fails, to name the damaged blob. The uncompressed digest proves the result, which is what matters, and
//! skipping the second hash of every blob makes an import about a tenth faster (docs/performance.md). The output is created fresh, extended to
//! `size`, and only its non-zero 4 KiB blocks are written, so holes stay holes.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use fs_err::os::unix::fs::FileExt as _;
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, HashingReader};
use crate::{BlobSink, DiskError, KnownBlob, blob, sparse};

/// The default uncompressed chunk size: 16 MiB.
///
/// Chosen by measurement (docs/performance.md): packing and unpacking take the same time for
/// 16..128 MiB, but packing holds about 2 chunks per thread in memory (89 MiB peak RSS with two
/// threads at 16 MiB, 247 MiB at 64 MiB), and a change of 1% of a guest's data re-uploads 6% of
/// the image at 16 MiB, 19% at 64 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 << 20;

/// The largest chunk size accepted, so a chunk always fits in memory.
pub const MAX_CHUNK_SIZE: u64 = 1 << 30;

/// The OCI media type of a chunk blob.
pub const MEDIA_TYPE_CHUNK: &str = "application/vnd.sardinecake.disk.chunk.v1+zstd";

/// The memory packing workers may hold together, so that exporting stays well under 256 MiB
/// however many cores the machine has (more workers would not help much either: at 16 MiB
/// chunks six of them compress faster than most disks read).
const PACK_MEMORY_BUDGET: usize = 224 << 20;

/// What a zstd compression context at the levels used here takes, roughly.
const ZSTD_CONTEXT_ESTIMATE: usize = 4 << 20;

/// Size of the pieces in which a blob offered for reuse is decompressed and compared.
const REUSE_COMPARE_BUFFER: usize = 1 << 20;

/// Size of the buffer each unpacking worker decompresses into.
const UNPACK_BUFFER: usize = 4 << 20;

/// How to pack a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOptions {
    /// Uncompressed bytes per chunk (1 ..= [`MAX_CHUNK_SIZE`]).
    pub chunk_size: u64,
    /// zstd compression level.
    pub level: i32,
    /// Number of chunks compressed in parallel (at least 1).
    pub threads: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            level: 3,
            threads: default_threads(),
        }
    }
}

/// The number of cores, or 1 if it cannot be found out.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// One packed chunk: the range it covers and its blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedChunk {
    /// Offset of the chunk in the file.
    pub offset: u64,
    /// Uncompressed length.
    pub length: u64,
    /// sha256 of the uncompressed bytes.
    pub digest: Digest,
    /// sha256 of the compressed blob.
    pub blob_digest: Digest,
    /// Size of the compressed blob.
    pub blob_size: u64,
}

/// A packed file: its size and its chunks in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFile {
    /// The file's size in bytes.
    pub size: u64,
    /// The chunks, tiling `[0, size)` in order.
    pub chunks: Vec<PackedChunk>,
}

/// Packs `path` into chunk blobs stored through `sink`.
///
/// Chunks are read with positioned reads (holes are never read), compressed in parallel by
/// `opts.threads` workers (at most as many as fit in the packing memory budget, see
/// [`memory_capped_threads`]), each holding one chunk and its compressed form. `progress` is called with the
/// number of uncompressed bytes just finished (an increment; the calls add up to the file size).
pub fn pack_file(
    path: &Path,
    opts: &PackOptions,
    sink: &dyn BlobSink,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PackedFile, DiskError> {
    check_options(opts)?;
    let file = fs_err::File::open(path).map_err(DiskError::io("open", path))?;
    let size = file
        .metadata()
        .map_err(DiskError::io("read the size of", path))?
        .len();
    let segments =
        sparse::data_segments(&file).map_err(DiskError::io("find the data segments of", path))?;
    let count = usize::try_from(size.div_ceil(opts.chunk_size)).unwrap_or(usize::MAX);
    let job = PackJob {
        path,
        file: &file,
        size,
        segments: &segments,
        opts,
        sink,
        progress,
        next: AtomicUsize::new(0),
        count,
        failed: AtomicBool::new(false),
        zero_chunks: Mutex::new(HashMap::new()),
    };
    let threads = opts
        .threads
        .min(count)
        .min(memory_capped_threads(opts.chunk_size));
    let mut chunks = run_workers(threads, || job.worker())?;
    chunks.sort_by_key(|chunk| chunk.offset);
    Ok(PackedFile { size, chunks })
}

/// How many packing workers fit in [`PACK_MEMORY_BUDGET`] (at least one): each holds a chunk,
/// its compressed form, a zstd context and a comparison buffer.
pub fn memory_capped_threads(chunk_size: u64) -> usize {
    let chunk = usize::try_from(chunk_size).unwrap_or(usize::MAX);
    let per_worker = chunk
        .saturating_add(zstd::zstd_safe::compress_bound(chunk))
        .saturating_add(REUSE_COMPARE_BUFFER + ZSTD_CONTEXT_ESTIMATE);
    (PACK_MEMORY_BUDGET / per_worker.max(1)).max(1)
}

/// Rejects options that cannot work.
fn check_options(opts: &PackOptions) -> Result<(), DiskError> {
    let reason = if opts.chunk_size == 0 || opts.chunk_size > MAX_CHUNK_SIZE {
        format!(
            "chunk size {} is not between 1 and {MAX_CHUNK_SIZE} bytes",
            opts.chunk_size
        )
    } else if !zstd::compression_level_range().contains(&opts.level) {
        format!(
            "zstd level {} is not in {:?}",
            opts.level,
            zstd::compression_level_range()
        )
    } else if opts.threads == 0 {
        "at least one thread is needed".to_owned()
    } else {
        return Ok(());
    };
    Err(DiskError::InvalidOptions { reason })
}

/// Runs `threads` workers (at least one) in a scope and gathers their results, or the first error.
fn run_workers<T: Send>(
    threads: usize,
    worker: impl Fn() -> Result<Vec<T>, DiskError> + Sync,
) -> Result<Vec<T>, DiskError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| scope.spawn(&worker)).collect();
        let mut all = Vec::new();
        let mut first_error = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(items)) => all.extend(items),
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        first_error.map_or(Ok(all), Err)
    })
}

/// The state shared by the packing workers.
struct PackJob<'a> {
    path: &'a Path,
    file: &'a fs_err::File,
    size: u64,
    segments: &'a [(u64, u64)],
    opts: &'a PackOptions,
    sink: &'a dyn BlobSink,
    progress: &'a (dyn Fn(u64) + Sync),
    /// The next chunk index to hand out.
    next: AtomicUsize,
    count: usize,
    /// Set by a worker that failed, so the others stop early.
    failed: AtomicBool,
    /// Packed all-zero chunks by length (there are at most two lengths).
    zero_chunks: Mutex<HashMap<u64, PackedChunk>>,
}

/// One worker's reusable buffers.
struct PackBuffers {
    input: Vec<u8>,
    output: Vec<u8>,
    /// Decompressed pieces of a blob offered for reuse, compared with the input.
    scratch: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl PackBuffers {
    /// Allocates buffers for chunks of up to `chunk` bytes.
    fn new(chunk: usize, level: i32) -> Result<Self, DiskError> {
        let compressor =
            zstd::bulk::Compressor::new(level).map_err(|source| DiskError::InvalidOptions {
                reason: format!("zstd rejected level {level}: {source}"),
            })?;
        Ok(Self {
            input: vec![0; chunk],
            output: Vec::with_capacity(zstd::zstd_safe::compress_bound(chunk)),
            scratch: vec![0; chunk.min(REUSE_COMPARE_BUFFER)],
            compressor,
        })
    }
}

impl PackJob<'_> {
    /// Takes chunks off the queue until it is empty or some worker failed.
    fn worker(&self) -> Result<Vec<PackedChunk>, DiskError> {
        // Chunk sizes are at most MAX_CHUNK_SIZE, which fits in usize.
        let mut buffers = PackBuffers::new(
            self.opts.chunk_size.min(self.size) as usize,
            self.opts.level,
        )?;
        let mut done = Vec::new();
        while !self.failed.load(Ordering::Relaxed) {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.count {
                break;
            }
            match self.pack_chunk(index, &mut buffers) {
                Ok(chunk) => {
                    (self.progress)(chunk.length);
                    done.push(chunk);
                }
                Err(err) => {
                    self.failed.store(true, Ordering::Relaxed);
                    return Err(err);
                }
            }
        }
        Ok(done)
    }

    /// Reads, hashes, compresses and stores chunk `index`.
    fn pack_chunk(
        &self,
        index: usize,
        buffers: &mut PackBuffers,
    ) -> Result<PackedChunk, DiskError> {
        let offset = index as u64 * self.opts.chunk_size;
        let length = self.opts.chunk_size.min(self.size - offset);
        let data = overlapping(self.segments, offset, length);
        if data.is_empty() {
            return self.zero_chunk(offset, length, buffers);
        }
        let input = &mut buffers.input[..length as usize];
        // Only the gaps between data segments are zeroed; the segments are read over the rest.
        let mut zeroed_to = 0;
        for (start, len) in data {
            let from = (start - offset) as usize;
            input[zeroed_to..from].fill(0);
            zeroed_to = from + len as usize;
            self.file
                .read_exact_at(&mut input[from..zeroed_to], start)
                .map_err(DiskError::io("read", self.path))?;
        }
        input[zeroed_to..].fill(0);
        if sparse::is_zero(input) {
            return self.zero_chunk(offset, length, buffers);
        }
        self.compress_and_store(offset, length, buffers)
    }

    /// Packs an all-zero chunk, compressing zeros of this length only once per file.
    fn zero_chunk(
        &self,
        offset: u64,
        length: u64,
        buffers: &mut PackBuffers,
    ) -> Result<PackedChunk, DiskError> {
        let mut cache = self
            .zero_chunks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let packed = match cache.get(&length) {
            Some(packed) => packed.clone(),
            None => {
                buffers.input[..length as usize].fill(0);
                let packed = self.compress_and_store(offset, length, buffers)?;
                cache.insert(length, packed.clone());
                packed
            }
        };
        Ok(PackedChunk { offset, ..packed })
    }

    /// Hashes and compresses the first `length` bytes of the input buffer and stores the blob.
    fn compress_and_store(
        &self,
        offset: u64,
        length: u64,
        buffers: &mut PackBuffers,
    ) -> Result<PackedChunk, DiskError> {
        let input = &buffers.input[..length as usize];
        let digest = Digest::of(input);
        if let Some(known) = self.sink.known_chunk(&digest, length)
            && self.reuse(&known, input, &mut buffers.output, &mut buffers.scratch)
        {
            return Ok(PackedChunk {
                offset,
                length,
                digest,
                blob_digest: known.digest,
                blob_size: known.size,
            });
        }
        buffers.output.clear();
        buffers
            .compressor
            .compress_to_buffer(input, &mut buffers.output)
            .map_err(|source| DiskError::Compress {
                path: self.path.to_path_buf(),
                offset,
                source,
            })?;
        let (blob_digest, blob_size) = blob::store_bytes(self.sink, &buffers.output)?;
        Ok(PackedChunk {
            offset,
            length,
            digest,
            blob_digest,
            blob_size,
        })
    }
}

impl PackJob<'_> {
    /// Whether `known` holds exactly `input` (its own digest checked, decompressed and compared
    /// piece by piece, stopping at the first difference) and was adopted into the sink. Any
    /// problem with it means no: the chunk is then compressed as usual.
    fn reuse(
        &self,
        known: &KnownBlob,
        input: &[u8],
        blob: &mut Vec<u8>,
        scratch: &mut [u8],
    ) -> bool {
        match holds_exactly(known, input, blob, scratch) {
            Ok(true) => self.sink.adopt(known).unwrap_or(false),
            Ok(false) | Err(_) => false,
        }
    }
}

/// Whether the blob `known` has its digest and decompresses to exactly `input`.
fn holds_exactly(
    known: &KnownBlob,
    input: &[u8],
    blob: &mut Vec<u8>,
    scratch: &mut [u8],
) -> std::io::Result<bool> {
    if known.size > blob.capacity() as u64 {
        return Ok(false);
    }
    blob.clear();
    fs_err::File::open(&known.path)?
        .take(known.size + 1)
        .read_to_end(blob)?;
    if blob.len() as u64 != known.size || Digest::of(blob) != known.digest {
        return Ok(false);
    }
    let mut decoder = zstd::stream::read::Decoder::with_buffer(&blob[..])?;
    let mut compared = 0;
    loop {
        let n = fill(&mut decoder, scratch)?;
        if n == 0 {
            return Ok(compared == input.len());
        }
        if input.get(compared..compared + n) != Some(&scratch[..n]) {
            return Ok(false);
        }
        compared += n;
    }
}

/// The parts of the data `segments` (sorted, disjoint) that fall into `[offset, offset + length)`.
fn overlapping(segments: &[(u64, u64)], offset: u64, length: u64) -> Vec<(u64, u64)> {
    let end = offset + length;
    let first = segments.partition_point(|&(start, len)| start + len <= offset);
    segments[first..]
        .iter()
        .take_while(|&&(start, _)| start < end)
        .map(|&(start, len)| {
            let from = start.max(offset);
            (from, (start + len).min(end) - from)
        })
        .collect()
}

/// Where one chunk of a file to unpack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSource {
    /// The compressed blob file.
    pub blob: PathBuf,
    /// Its expected sha256.
    pub blob_digest: Digest,
    /// Its expected size.
    pub blob_size: u64,
    /// Offset of the chunk in the file.
    pub offset: u64,
    /// Uncompressed length.
    pub length: u64,
    /// Expected sha256 of the uncompressed bytes.
    pub digest: Digest,
}

/// Creates `target` (which must not exist), sets its length to `size` and writes every chunk in parallel
/// with positioned writes, leaving all-zero blocks as holes.
///
/// Verifies each blob's size and each chunk's uncompressed length and sha256 (and, when a chunk fails, its
/// blob's sha256, so the error names a damaged blob); never writes more
/// than `length` bytes per chunk nor past `size`; fsyncs. The chunks must tile `[0, size)` exactly. On any
/// error the target is removed. `progress` is called with the number of uncompressed bytes just written
/// (an increment).
pub fn unpack_file(
    target: &Path,
    size: u64,
    chunks: &[ChunkSource],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), DiskError> {
    check_tiling(target, size, chunks)?;
    let file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(DiskError::io("create", target))?;
    let guard = RemoveOnError {
        path: target,
        armed: true,
    };
    file.set_len(size)
        .map_err(DiskError::io("set the size of", target))?;
    let job = UnpackJob {
        target,
        file: &file,
        chunks,
        progress,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        zero_chunks: Mutex::new(HashSet::new()),
    };
    run_workers(threads.min(chunks.len()), || job.worker())?;
    file.sync_all().map_err(DiskError::io("flush", target))?;
    guard.disarm();
    Ok(())
}

/// Checks that the chunks tile `[0, size)` exactly.
fn check_tiling(target: &Path, size: u64, chunks: &[ChunkSource]) -> Result<(), DiskError> {
    let fail = |reason: String| DiskError::ChunkTiling {
        target: target.to_path_buf(),
        reason,
    };
    let mut sorted: Vec<&ChunkSource> = chunks.iter().collect();
    sorted.sort_by_key(|chunk| chunk.offset);
    let mut expected = 0u64;
    for chunk in sorted {
        if chunk.length == 0 {
            return Err(fail(format!(
                "the chunk at offset {} is empty",
                chunk.offset
            )));
        }
        if chunk.offset != expected {
            let what = if chunk.offset > expected {
                "gap"
            } else {
                "overlap"
            };
            return Err(fail(format!(
                "{what} at offset {} (next chunk starts at {})",
                expected, chunk.offset
            )));
        }
        expected = chunk
            .offset
            .checked_add(chunk.length)
            .filter(|&end| end <= size)
            .ok_or_else(|| {
                fail(format!(
                    "the chunk at offset {} runs past the file size {size}",
                    chunk.offset
                ))
            })?;
    }
    if expected != size {
        return Err(fail(format!(
            "the chunks end at {expected}, the file size is {size}"
        )));
    }
    Ok(())
}

/// Removes a file when dropped, unless disarmed.
struct RemoveOnError<'a> {
    path: &'a Path,
    armed: bool,
}

impl RemoveOnError<'_> {
    /// Keeps the file.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for RemoveOnError<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the error that caused the removal is the one reported.
            let _ignored = fs_err::remove_file(self.path);
        }
    }
}

/// The state shared by the unpacking workers.
struct UnpackJob<'a> {
    target: &'a Path,
    file: &'a fs_err::File,
    chunks: &'a [ChunkSource],
    progress: &'a (dyn Fn(u64) + Sync),
    next: AtomicUsize,
    failed: AtomicBool,
    /// Chunks already verified to be all zeros, as (blob digest, length, digest): a chunk with the same
    /// key is skipped, since the freshly extended file already reads as zeros there.
    zero_chunks: Mutex<HashSet<(Digest, u64, Digest)>>,
}

impl UnpackJob<'_> {
    /// Takes chunks off the queue until it is empty or some worker failed.
    fn worker(&self) -> Result<Vec<()>, DiskError> {
        let mut buf = vec![0u8; UNPACK_BUFFER];
        while !self.failed.load(Ordering::Relaxed) {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = self.chunks.get(index) else {
                break;
            };
            if let Err(err) = self.unpack_chunk(chunk, &mut buf) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(err);
            }
        }
        Ok(Vec::new())
    }

    /// Decompresses one chunk into place and verifies it and its blob.
    fn unpack_chunk(&self, chunk: &ChunkSource, buf: &mut [u8]) -> Result<(), DiskError> {
        let key = (
            chunk.blob_digest.clone(),
            chunk.length,
            chunk.digest.clone(),
        );
        let zero_chunks = || {
            self.zero_chunks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if zero_chunks().contains(&key) {
            (self.progress)(chunk.length);
            return Ok(());
        }
        let blob = fs_err::File::open(&chunk.blob)
            .map_err(DiskError::io("open chunk blob", &chunk.blob))?;
        let actual = blob
            .metadata()
            .map_err(DiskError::io("read the size of", &chunk.blob))?
            .len();
        if actual != chunk.blob_size {
            return Err(DiskError::BlobSizeMismatch {
                blob: chunk.blob.clone(),
                expected: chunk.blob_size,
                actual,
            });
        }
        let decoded = self.decode_chunk(chunk, &mut &blob, buf);
        if let Ok((digest, all_zero)) = &decoded
            && *digest == chunk.digest
        {
            if *all_zero {
                zero_chunks().insert(key);
            }
            return Ok(());
        }
        // A damaged blob explains any decoding problem best, so it is named if it is one.
        check_blob_digest(chunk)?;
        let (digest, _) = decoded?;
        Err(DiskError::ChunkDigestMismatch {
            target: self.target.to_path_buf(),
            offset: chunk.offset,
            expected: chunk.digest.clone(),
            actual: digest,
        })
    }

    /// Decompresses a chunk from `blob`, writes it sparsely and returns the digest of its bytes and
    /// whether they were all zeros.
    fn decode_chunk(
        &self,
        chunk: &ChunkSource,
        blob: &mut impl Read,
        buf: &mut [u8],
    ) -> Result<(Digest, bool), DiskError> {
        let decode_error = |source| DiskError::Decompress {
            blob: chunk.blob.clone(),
            source,
        };
        let mut decoder =
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 20, blob))
                .map_err(decode_error)?;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        let mut written = 0u64;
        loop {
            let n = fill(&mut decoder, buf).map_err(decode_error)?;
            if n == 0 {
                break;
            }
            if done + n as u64 > chunk.length {
                return Err(self.length_error(chunk, done + n as u64));
            }
            hasher.update(&buf[..n]);
            written += sparse::write_sparse_at(self.file.file(), chunk.offset + done, &buf[..n])
                .map_err(DiskError::io("write", self.target))?;
            done += n as u64;
            (self.progress)(n as u64);
        }
        if done != chunk.length {
            return Err(self.length_error(chunk, done));
        }
        if written > 0 {
            sparse::start_writeback(self.file.file(), chunk.offset, chunk.length);
        }
        Ok((Digest::from_hasher(hasher), written == 0))
    }

    /// The error for a chunk that decompressed to `actual` bytes.
    fn length_error(&self, chunk: &ChunkSource, actual: u64) -> DiskError {
        DiskError::ChunkLength {
            target: self.target.to_path_buf(),
            offset: chunk.offset,
            expected: chunk.length,
            actual,
        }
    }
}

/// Hashes a chunk's blob file and fails if its size or digest is not the expected one.
fn check_blob_digest(chunk: &ChunkSource) -> Result<(), DiskError> {
    let blob =
        fs_err::File::open(&chunk.blob).map_err(DiskError::io("open chunk blob", &chunk.blob))?;
    let (blob_digest, blob_size) = HashingReader::new(blob)
        .finish()
        .map_err(DiskError::io("read chunk blob", &chunk.blob))?;
    if blob_size != chunk.blob_size {
        return Err(DiskError::BlobSizeMismatch {
            blob: chunk.blob.clone(),
            expected: chunk.blob_size,
            actual: blob_size,
        });
    }
    if blob_digest != chunk.blob_digest {
        return Err(DiskError::BlobDigestMismatch {
            blob: chunk.blob.clone(),
            expected: chunk.blob_digest.clone(),
            actual: blob_digest,
        });
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_clips_segments_to_the_chunk() {
        let segments = [(0, 10), (20, 10), (50, 100)];
        assert_eq!(overlapping(&segments, 0, 10), vec![(0, 10)]);
        assert_eq!(overlapping(&segments, 5, 20), vec![(5, 5), (20, 5)]);
        assert_eq!(overlapping(&segments, 30, 20), vec![]);
        assert_eq!(overlapping(&segments, 60, 10), vec![(60, 10)]);
        assert_eq!(overlapping(&segments, 140, 100), vec![(140, 10)]);
    }

    fn source(offset: u64, length: u64) -> ChunkSource {
        let digest = Digest::of(b"");
        ChunkSource {
            blob: PathBuf::from("b"),
            blob_digest: digest.clone(),
            blob_size: 1,
            offset,
            length,
            digest,
        }
    }

    #[test]
    fn tiling_accepts_exact_covers_in_any_order() {
        let target = Path::new("t");
        check_tiling(target, 0, &[]).unwrap();
        check_tiling(target, 30, &[source(10, 20), source(0, 10)]).unwrap();
    }

    #[test]
    fn tiling_rejects_gaps_overlaps_empty_and_overruns() {
        let target = Path::new("t");
        let bad: [(u64, &[ChunkSource]); 6] = [
            (30, &[source(0, 10), source(11, 19)]),
            (30, &[source(0, 10), source(9, 21)]),
            (30, &[source(0, 10), source(10, 0), source(10, 20)]),
            (30, &[source(0, 10)]),
            (30, &[source(0, 40)]),
            (10, &[source(0, 10), source(10, u64::MAX)]),
        ];
        for (size, chunks) in bad {
            assert!(
                matches!(
                    check_tiling(target, size, chunks),
                    Err(DiskError::ChunkTiling { .. })
                ),
                "{chunks:?}"
            );
        }
        assert!(check_tiling(target, 5, &[]).is_err());
    }

    #[test]
    fn workers_are_capped_by_memory() {
        assert_eq!(memory_capped_threads(16 << 20), 6);
        assert_eq!(memory_capped_threads(4 << 20), 17);
        assert_eq!(
            memory_capped_threads(MAX_CHUNK_SIZE),
            1,
            "always at least one"
        );
    }

    #[test]
    fn options_are_checked() {
        let ok = PackOptions::default();
        check_options(&ok).unwrap();
        assert!(
            check_options(&PackOptions {
                chunk_size: 0,
                ..ok.clone()
            })
            .is_err()
        );
        assert!(
            check_options(&PackOptions {
                chunk_size: MAX_CHUNK_SIZE + 1,
                ..ok.clone()
            })
            .is_err()
        );
        assert!(
            check_options(&PackOptions {
                threads: 0,
                ..ok.clone()
            })
            .is_err()
        );
        assert!(check_options(&PackOptions { level: 1000, ..ok }).is_err());
    }
}
