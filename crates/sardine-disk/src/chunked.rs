//! The chunked disk format, the default of `sarde export`: fixed-size chunks, each an independent zstd blob.
//!
//! # Encoding
//!
//! A file of `size` bytes is cut into `ceil(size / chunk_size)` chunks; chunk `i` covers the bytes
//! `[i * chunk_size, min((i + 1) * chunk_size, size))` of the file, so every chunk but the last is exactly
//! `chunk_size` bytes long ([`DEFAULT_CHUNK_SIZE`] is 16 MiB). An empty file has no chunks. Holes of a sparse
//! file are read as zeros. [`pack_file`] emits chunks that are all zeros like any other (they all share one
//! blob); [`pack_sparse_file`] leaves them out, so that a file is described by its size and the chunks that
//! hold data, and [`unpack_sparse_file`] reads the gaps between chunks as holes. That keeps the description
//! of a big sparse disk as small as its data: a 200 GiB disk holding 2 MiB has one chunk, not 12,800.
//!
//! The chunk size of a file can grow with it ([`auto_chunk_size`]: 16 MiB until a file has
//! [`MAX_AUTO_CHUNKS`] chunks with data, then doubling), so that the manifest of a 1 TiB disk stays small.
//! A chunk longer than [`FRAME_SIZE`] is compressed as consecutive zstd frames of [`FRAME_SIZE`] bytes each,
//! streamed into its blob, so packing holds at most one frame per worker whatever the chunk size.
//!
//! Each chunk is compressed on its own into one blob of media type [`MEDIA_TYPE_CHUNK`]: a single zstd
//! frame (RFC 8878) holding exactly the chunk's bytes (chunks longer than [`FRAME_SIZE`]: one frame per
//! [`FRAME_SIZE`] bytes), with the content size in the frame header, no
//! dictionary and no zstd checksum (the digests below cover it). Compression is single-threaded per chunk
//! at the chosen level (default 3), so the same input and zstd version always give the same blob and an
//! unchanged chunk is never stored twice. A reader must accept any valid zstd stream, including several
//! concatenated frames.
//!
//! When the sink offers a blob it already holds (for chunks of at most [`FRAME_SIZE`] bytes) for a chunk's uncompressed digest and length
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

/// Chunks longer than this are compressed as consecutive frames of this many bytes.
pub const FRAME_SIZE: u64 = DEFAULT_CHUNK_SIZE;

/// The most chunks with data that [`auto_chunk_size`] gives a file (unless the chunk size would
/// exceed [`MAX_CHUNK_SIZE`]): 16 MiB chunks up to 32 GiB of data, 512 MiB chunks at 1 TiB.
pub const MAX_AUTO_CHUNKS: u64 = 2048;

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

/// Packs `path` into chunk blobs stored through `sink`, every chunk listed (all-zero ones too).
///
/// Chunks are read with positioned reads (holes are never read), compressed in parallel by
/// `opts.threads` workers (at most as many as fit in the packing memory budget, see
/// [`memory_capped_threads`]), each holding one chunk (at most one frame of it) and its compressed form.
/// `progress` is called with the number of uncompressed bytes just finished (an increment; the calls add up
/// to the file size).
pub fn pack_file(
    path: &Path,
    opts: &PackOptions,
    sink: &dyn BlobSink,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PackedFile, DiskError> {
    pack(path, opts, sink, progress, false)
}

/// Packs `path` like [`pack_file`], but leaves out the chunks that are all zeros: the file is its size
/// and the chunks that hold data (see [`unpack_sparse_file`]). Chunks within holes are not even looked
/// at, so the work is that of the data, not of the file's size.
pub fn pack_sparse_file(
    path: &Path,
    opts: &PackOptions,
    sink: &dyn BlobSink,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PackedFile, DiskError> {
    pack(path, opts, sink, progress, true)
}

/// The size and data segments of the file at `path`: what [`auto_chunk_size`] and
/// [`data_chunk_count`] need.
pub fn file_segments(path: &Path) -> Result<(u64, Vec<(u64, u64)>), DiskError> {
    let file = fs_err::File::open(path).map_err(DiskError::io("open", path))?;
    let size = file
        .metadata()
        .map_err(DiskError::io("read the size of", path))?
        .len();
    let segments =
        sparse::data_segments(&file).map_err(DiskError::io("find the data segments of", path))?;
    Ok((size, segments))
}

/// How many chunks of `chunk_size` bytes overlap the data `segments` (sorted, disjoint): an upper
/// bound of the chunks [`pack_sparse_file`] lists (some may turn out to be all zeros). Takes time in
/// the number of segments, not of chunks.
pub fn data_chunk_count(segments: &[(u64, u64)], chunk_size: u64) -> u64 {
    data_chunk_ranges(segments, chunk_size)
        .map(|range| range.end - range.start)
        .sum()
}

/// The indices of the chunks of `chunk_size` bytes that overlap the data `segments` (sorted,
/// disjoint), as ascending, disjoint ranges.
fn data_chunk_ranges(
    segments: &[(u64, u64)],
    chunk_size: u64,
) -> impl Iterator<Item = std::ops::Range<u64>> + Send + '_ {
    let mut next_free = 0;
    segments
        .iter()
        .filter(|segment| segment.1 > 0)
        .filter_map(move |&(start, len)| {
            let first = (start / chunk_size).max(next_free);
            let end = (start + len - 1) / chunk_size + 1;
            next_free = next_free.max(end);
            (first < end).then_some(first..end)
        })
}

/// The chunk size for a file with these data segments: [`DEFAULT_CHUNK_SIZE`], doubled until at most
/// [`MAX_AUTO_CHUNKS`] chunks hold data or the size reaches [`MAX_CHUNK_SIZE`].
pub fn auto_chunk_size(segments: &[(u64, u64)]) -> u64 {
    let mut chunk_size = DEFAULT_CHUNK_SIZE;
    while chunk_size < MAX_CHUNK_SIZE && data_chunk_count(segments, chunk_size) > MAX_AUTO_CHUNKS {
        chunk_size *= 2;
    }
    chunk_size
}

/// Packs `path`; `omit_zero`: leave out all-zero chunks.
fn pack(
    path: &Path,
    opts: &PackOptions,
    sink: &dyn BlobSink,
    progress: &(dyn Fn(u64) + Sync),
    omit_zero: bool,
) -> Result<PackedFile, DiskError> {
    check_options(opts)?;
    let file = fs_err::File::open(path).map_err(DiskError::io("open", path))?;
    let size = file
        .metadata()
        .map_err(DiskError::io("read the size of", path))?
        .len();
    let segments =
        sparse::data_segments(&file).map_err(DiskError::io("find the data segments of", path))?;
    let count = size.div_ceil(opts.chunk_size);
    let indices: Box<dyn Iterator<Item = u64> + Send + '_> = if omit_zero {
        Box::new(data_chunk_ranges(&segments, opts.chunk_size).flatten())
    } else {
        Box::new(0..count)
    };
    let job = PackJob {
        path,
        file: &file,
        size,
        segments: &segments,
        opts,
        sink,
        progress,
        omit_zero,
        queue: Mutex::new(ChunkQueue {
            indices,
            next_offset: 0,
        }),
        failed: AtomicBool::new(false),
        zero_chunks: Mutex::new(HashMap::new()),
    };
    let threads = opts
        .threads
        .min(usize::try_from(count).unwrap_or(usize::MAX))
        .min(memory_capped_threads(opts.chunk_size.min(FRAME_SIZE)));
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
    /// Leave out all-zero chunks.
    omit_zero: bool,
    /// The chunks to hand out.
    queue: Mutex<ChunkQueue<'a>>,
    /// Set by a worker that failed, so the others stop early.
    failed: AtomicBool,
    /// Packed all-zero chunks by length (there are at most two lengths).
    zero_chunks: Mutex<HashMap<u64, PackedChunk>>,
}

/// The chunks still to pack, and where the bytes handed out end.
struct ChunkQueue<'a> {
    indices: Box<dyn Iterator<Item = u64> + Send + 'a>,
    /// The end of the last chunk handed out: the bytes before it are done or being done.
    next_offset: u64,
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
            self.opts.chunk_size.min(FRAME_SIZE).min(self.size) as usize,
            self.opts.level,
        )?;
        let mut done = Vec::new();
        while !self.failed.load(Ordering::Relaxed) {
            let Some(index) = self.next_chunk() else {
                break;
            };
            match self.pack_chunk(index, &mut buffers) {
                Ok((length, chunk)) => {
                    (self.progress)(length);
                    done.extend(chunk);
                }
                Err(err) => {
                    self.failed.store(true, Ordering::Relaxed);
                    return Err(err);
                }
            }
        }
        Ok(done)
    }

    /// The index of the next chunk to pack, if any. The bytes of the chunks not handed out (holes,
    /// with [`pack_sparse_file`]) count as done when the queue passes them.
    fn next_chunk(&self) -> Option<u64> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = queue.indices.next();
        let (offset, end) = match index {
            Some(index) => {
                let offset = index * self.opts.chunk_size;
                (offset, (offset + self.opts.chunk_size).min(self.size))
            }
            None => (self.size, self.size),
        };
        if offset > queue.next_offset {
            (self.progress)(offset - queue.next_offset);
        }
        queue.next_offset = queue.next_offset.max(end);
        index
    }

    /// Reads, hashes, compresses and stores chunk `index`; returns its length and the packed chunk
    /// (`None`: all zeros, left out).
    fn pack_chunk(
        &self,
        index: u64,
        buffers: &mut PackBuffers,
    ) -> Result<(u64, Option<PackedChunk>), DiskError> {
        let offset = index * self.opts.chunk_size;
        let length = self.opts.chunk_size.min(self.size - offset);
        let data = overlapping(self.segments, offset, length);
        let packed = if data.is_empty() {
            self.zero_chunk(offset, length, buffers)?
        } else if length > FRAME_SIZE {
            let framed = self.stream_frames(offset, length, &data, buffers)?;
            if framed.all_zero {
                self.zero_chunk(offset, length, buffers)?
            } else {
                Some(framed.finish(offset, length)?)
            }
        } else {
            let input = &mut buffers.input[..length as usize];
            self.read_into(&data, offset, input)?;
            if sparse::is_zero(input) {
                self.zero_chunk(offset, length, buffers)?
            } else {
                Some(self.compress_and_store(offset, length, buffers)?)
            }
        };
        Ok((length, packed))
    }

    /// Fills `input` with the file's bytes from `offset` on: the data segments `data` (within the range)
    /// are read, only the gaps between them are zeroed.
    fn read_into(
        &self,
        data: &[(u64, u64)],
        offset: u64,
        input: &mut [u8],
    ) -> Result<(), DiskError> {
        let mut zeroed_to = 0;
        for &(start, len) in data {
            let from = (start - offset) as usize;
            input[zeroed_to..from].fill(0);
            zeroed_to = from + len as usize;
            self.file
                .read_exact_at(&mut input[from..zeroed_to], start)
                .map_err(DiskError::io("read", self.path))?;
        }
        input[zeroed_to..].fill(0);
        Ok(())
    }

    /// Packs an all-zero chunk (or leaves it out), compressing zeros of this length only once per file.
    fn zero_chunk(
        &self,
        offset: u64,
        length: u64,
        buffers: &mut PackBuffers,
    ) -> Result<Option<PackedChunk>, DiskError> {
        if self.omit_zero {
            return Ok(None);
        }
        let mut cache = self
            .zero_chunks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let packed = match cache.get(&length) {
            Some(packed) => packed.clone(),
            None => {
                let packed = if length > FRAME_SIZE {
                    self.stream_frames(offset, length, &[], buffers)?
                        .finish(offset, length)?
                } else {
                    buffers.input[..length as usize].fill(0);
                    self.compress_and_store(offset, length, buffers)?
                };
                cache.insert(length, packed.clone());
                packed
            }
        };
        Ok(Some(PackedChunk { offset, ..packed }))
    }

    /// Compresses a chunk longer than [`FRAME_SIZE`] as consecutive frames streamed into a temp blob,
    /// hashing its bytes on the way (such chunks are not offered for reuse: that needs the whole
    /// chunk in memory).
    fn stream_frames(
        &self,
        offset: u64,
        length: u64,
        data: &[(u64, u64)],
        buffers: &mut PackBuffers,
    ) -> Result<Framed<'_>, DiskError> {
        let mut blob = blob::TempBlob::new(self.sink)?;
        let mut hasher = Sha256::new();
        let mut all_zero = true;
        let end = offset + length;
        let mut pos = offset;
        while pos < end {
            let n = FRAME_SIZE.min(end - pos);
            let input = &mut buffers.input[..n as usize];
            self.read_into(&overlapping(data, pos, n), pos, input)?;
            hasher.update(&*input);
            all_zero &= sparse::is_zero(input);
            self.compress_frame(pos, n, buffers)?;
            blob.write(&buffers.output)?;
            pos += n;
        }
        Ok(Framed {
            blob,
            digest: Digest::from_hasher(hasher),
            all_zero,
        })
    }

    /// Compresses the first `length` bytes of the input buffer (which start at `offset` in the file)
    /// into the output buffer, as one zstd frame.
    fn compress_frame(
        &self,
        offset: u64,
        length: u64,
        buffers: &mut PackBuffers,
    ) -> Result<(), DiskError> {
        buffers.output.clear();
        buffers
            .compressor
            .compress_to_buffer(&buffers.input[..length as usize], &mut buffers.output)
            .map(drop)
            .map_err(|source| DiskError::Compress {
                path: self.path.to_path_buf(),
                offset,
                source,
            })
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
        self.compress_frame(offset, length, buffers)?;
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

/// A chunk compressed frame by frame, not yet stored.
struct Framed<'a> {
    blob: blob::TempBlob<'a>,
    /// sha256 of its uncompressed bytes.
    digest: Digest,
    all_zero: bool,
}

impl Framed<'_> {
    /// Stores the blob and describes the chunk at `offset`, `length` bytes long.
    fn finish(self, offset: u64, length: u64) -> Result<PackedChunk, DiskError> {
        let (blob_digest, blob_size) = self.blob.finish()?;
        Ok(PackedChunk {
            offset,
            length,
            digest: self.digest,
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
/// (an increment). Images of format version 1 list every chunk; [`unpack_sparse_file`] reads those
/// [`pack_sparse_file`] writes.
pub fn unpack_file(
    target: &Path,
    size: u64,
    chunks: &[ChunkSource],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), DiskError> {
    unpack(target, size, chunks, threads, progress, Coverage::Exact)
}

/// Unpacks like [`unpack_file`] a file that [`pack_sparse_file`] packed: the chunks must not overlap
/// nor reach past `size`, and the gaps between them stay holes. `progress` adds up to the bytes of
/// the chunks, which is also all the work done.
pub fn unpack_sparse_file(
    target: &Path,
    size: u64,
    chunks: &[ChunkSource],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), DiskError> {
    unpack(target, size, chunks, threads, progress, Coverage::Sparse)
}

/// How chunks must cover a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coverage {
    /// They tile it exactly.
    Exact,
    /// Gaps between them are holes.
    Sparse,
}

/// Unpacks into `target` the chunks, which must cover it as `coverage` says.
fn unpack(
    target: &Path,
    size: u64,
    chunks: &[ChunkSource],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
    coverage: Coverage,
) -> Result<(), DiskError> {
    check_tiling(target, size, chunks, coverage)?;
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

/// Checks that the chunks tile `[0, size)` exactly (with [`Coverage::Sparse`]: that they do not overlap
/// and end within it).
fn check_tiling(
    target: &Path,
    size: u64,
    chunks: &[ChunkSource],
    coverage: Coverage,
) -> Result<(), DiskError> {
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
        if chunk.offset != expected && !(coverage == Coverage::Sparse && chunk.offset > expected) {
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
    if expected != size && coverage == Coverage::Exact {
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
        check_tiling(target, 0, &[], Coverage::Exact).unwrap();
        check_tiling(
            target,
            30,
            &[source(10, 20), source(0, 10)],
            Coverage::Exact,
        )
        .unwrap();
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
                    check_tiling(target, size, chunks, Coverage::Exact),
                    Err(DiskError::ChunkTiling { .. })
                ),
                "{chunks:?}"
            );
        }
        assert!(check_tiling(target, 5, &[], Coverage::Exact).is_err());
    }

    #[test]
    fn sparse_tiling_accepts_gaps_but_not_overlaps_or_overruns() {
        let target = Path::new("t");
        let sparse = Coverage::Sparse;
        check_tiling(target, 100, &[], sparse).unwrap();
        check_tiling(target, 100, &[source(50, 10), source(10, 20)], sparse).unwrap();
        check_tiling(target, 100, &[source(90, 10)], sparse).unwrap();
        for chunks in [
            vec![source(0, 20), source(10, 20)],
            vec![source(95, 10)],
            vec![source(10, 0)],
        ] {
            assert!(
                matches!(
                    check_tiling(target, 100, &chunks, sparse),
                    Err(DiskError::ChunkTiling { .. })
                ),
                "{chunks:?}"
            );
        }
    }

    #[test]
    fn data_chunks_are_counted_once_each() {
        assert_eq!(data_chunk_count(&[], 16), 0);
        assert_eq!(data_chunk_count(&[(0, 1)], 16), 1);
        assert_eq!(data_chunk_count(&[(0, 16)], 16), 1);
        assert_eq!(data_chunk_count(&[(0, 17)], 16), 2);
        // Two segments in one chunk, then one that starts in it and reaches into the next two.
        assert_eq!(data_chunk_count(&[(1, 2), (5, 2), (10, 30)], 16), 3);
        assert_eq!(data_chunk_count(&[(0, 1), (100, 1), (1000, 0)], 16), 2);
        let ranges: Vec<_> =
            data_chunk_ranges(&[(1, 2), (5, 2), (10, 30), (1 << 40, 1)], 16).collect();
        assert_eq!(ranges, vec![0..1, 1..3, (1 << 36)..(1 << 36) + 1]);
    }

    #[test]
    fn chunks_grow_with_the_data_only() {
        const GIB: u64 = 1 << 30;
        // Little data in a big file, and a dense 32 GiB file: 16 MiB.
        assert_eq!(
            auto_chunk_size(&[(0, 1 << 20), (150 * GIB, 1 << 20)]),
            DEFAULT_CHUNK_SIZE
        );
        assert_eq!(auto_chunk_size(&[(0, 32 * GIB)]), DEFAULT_CHUNK_SIZE);
        assert_eq!(
            auto_chunk_size(&[(0, 32 * GIB + 1)]),
            2 * DEFAULT_CHUNK_SIZE
        );
        // 1 TiB of data: 2048 chunks of 512 MiB; far more: capped.
        assert_eq!(auto_chunk_size(&[(0, 1024 * GIB)]), 512 << 20);
        assert_eq!(auto_chunk_size(&[(0, 64 * 1024 * GIB)]), MAX_CHUNK_SIZE);
        // One 4 KiB block every 16 MiB over 64 GiB: chunks with data, not the bytes, count.
        let scattered: Vec<(u64, u64)> = (0..4096).map(|i| (i * (16 << 20), 4096)).collect();
        assert_eq!(auto_chunk_size(&scattered), 2 * DEFAULT_CHUNK_SIZE);
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
