//! sardinecake 0.4.2's disk format: one gzip member per file, its compressed stream cut into pieces.
//!
//! # Encoding
//!
//! Each disk file (every image of a backing chain separately) becomes exactly one gzip member (RFC 1952):
//!
//! * header: `1f 8b 08 08`, then MTIME = the source file's modification time in seconds as a 32-bit
//!   little-endian integer (0 if it does not fit), XFL `00`, OS `ff`, then FNAME: the file's base name with
//!   a trailing `.gz` removed, in Latin-1, ended by a NUL byte. A name that cannot be written in Latin-1 is
//!   left out, and the flag byte is `00` instead of `08`.
//! * body: raw deflate at level 6 (0.4.2 uses zlib with memLevel 8; this crate uses flate2, whose output is
//!   equally valid but not byte-identical, so blobs are not shared with 0.4.2's).
//! * trailer: CRC-32 of the uncompressed data and its length modulo 2^32, both little-endian.
//!
//! The *compressed* byte stream is then cut into pieces of exactly `chunk_size` bytes (the last one
//! shorter; no cutting if the size is absent or 0); a piece never holds bytes of two files. Each piece is
//! one OCI layer. The layers of one file follow each other in manifest order with media types
//! `<mime>+gzip` for the first and `<mime>+gzip;chunk=N` for piece N ≥ 1, where `<mime>` is
//! `application/x-qemu-disk` for qcow2 images and `application/octet-stream` otherwise ([`media_type`],
//! [`parse_media_type`]). The image config's `rootfs.diff_ids` holds one sha256 per *file* (of its
//! uncompressed contents), not per layer.
//!
//! When importing, a layer whose chunk number is 0 or absent starts a new file (0.4.2 sniffed for `1f 8b`
//! instead, which misfires on 1 piece in 65536). The file is written under its FNAME, which must be a safe
//! file name ([`crate::names`]); a second gzip member or any other data after the first member's trailer is rejected.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use sha2::{Digest as _, Sha256};

use crate::blob::{StoredBlob, TempBlob};
use crate::{BlobSink, Digest, DiskError, sparse};

/// Media type of the first layer of a gzipped qcow2 image.
pub const MEDIA_TYPE_QCOW2_GZIP: &str = "application/x-qemu-disk+gzip";
/// Media type of the first layer of a gzipped file of any other kind.
pub const MEDIA_TYPE_RAW_GZIP: &str = "application/octet-stream+gzip";
/// MIME type of qcow2 images.
pub const MIME_QCOW2: &str = "application/x-qemu-disk";
/// MIME type of everything else.
pub const MIME_RAW: &str = "application/octet-stream";

/// The longest FNAME accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// The longest FCOMMENT accepted, in bytes.
pub const MAX_COMMENT_LEN: usize = 65536;
/// The longest possible header within those limits.
pub const MAX_HEADER_LEN: usize = 10 + 2 + 65535 + (MAX_NAME_LEN + 1) + (MAX_COMMENT_LEN + 1) + 2;

/// Header flag bits (RFC 1952, 2.3.1).
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

/// Size of the buffers used for reading and (de)compressing.
const BUFFER: usize = 1 << 20;

/// The result of packing one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyPacked {
    /// The base MIME type, e.g. `application/x-qemu-disk`.
    pub mime: String,
    /// sha256 of the uncompressed file (its diff_id).
    pub uncompressed_digest: Digest,
    /// The pieces' digests and sizes, in order.
    pub blobs: Vec<(Digest, u64)>,
}

/// The fields of a gzip header this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzipHeader {
    /// The original file name (FNAME), decoded from Latin-1.
    pub fname: Option<String>,
    /// Modification time in seconds since the epoch (0: unknown).
    pub mtime: u32,
    /// Length of the header in bytes; the deflate data starts there.
    pub header_len: usize,
}

/// The MIME type of a layer: qcow2 by its magic, anything else is a byte stream.
pub fn mime_for(path: &Path) -> Result<&'static str, DiskError> {
    let file = fs_err::File::open(path).map_err(DiskError::io("open", path))?;
    let mut magic = Vec::with_capacity(4);
    file.take(4)
        .read_to_end(&mut magic)
        .map_err(DiskError::io("read", path))?;
    Ok(if magic == crate::qcow2::MAGIC {
        MIME_QCOW2
    } else {
        MIME_RAW
    })
}

/// The media type of piece `chunk_index` of a file of type `mime`.
pub fn media_type(mime: &str, chunk_index: usize) -> String {
    if chunk_index == 0 {
        format!("{mime}+gzip")
    } else {
        format!("{mime}+gzip;chunk={chunk_index}")
    }
}

/// Parses `<base>+gzip[;chunk=N]` into `(base, N)` (N is 0 when absent). Other parameters are ignored;
/// `None` if the type is not gzip or a parameter is malformed.
pub fn parse_media_type(mt: &str) -> Option<(&str, usize)> {
    let mut parts = mt.split(';');
    let base = parts.next()?.trim().strip_suffix("+gzip")?;
    if base.is_empty() {
        return None;
    }
    let mut chunk = 0;
    for param in parts {
        let (key, value) = param.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("chunk") {
            chunk = value.trim().parse().ok()?;
        }
    }
    Some((base, chunk))
}

/// Packs `path` as one gzip member named `file_name`, cut into pieces of `chunk_size` bytes.
pub fn pack_file(
    path: &Path,
    file_name: &str,
    chunk_size: Option<u64>,
    sink: &dyn BlobSink,
) -> Result<LegacyPacked, DiskError> {
    let mime = mime_for(path)?;
    let mut input = fs_err::File::open(path).map_err(DiskError::io("open", path))?;
    let modified = input
        .metadata()
        .and_then(|m| m.modified())
        .map_err(DiskError::io("read the time of", path))?;
    let mut pieces = PieceWriter {
        sink,
        chunk_size: chunk_size.filter(|&size| size > 0),
        current: None,
        done: Vec::new(),
    };
    pieces.write(&gzip_header(file_name, gzip_mtime(modified)))?;
    let mut deflater = Deflater::new(path, &mut pieces);
    let mut hasher = Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = input.read(&mut buf).map_err(DiskError::io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        crc.update(&buf[..n]);
        total += n as u64;
        deflater.push(&buf[..n], FlushCompress::None)?;
    }
    deflater.push(&[], FlushCompress::Finish)?;
    let mut trailer = crc.finalize().to_le_bytes().to_vec();
    // ISIZE is the length modulo 2^32.
    trailer.extend_from_slice(&(total as u32).to_le_bytes());
    pieces.write(&trailer)?;
    Ok(LegacyPacked {
        mime: mime.to_owned(),
        uncompressed_digest: Digest::from_hasher(hasher),
        blobs: pieces.finish()?,
    })
}

/// The header 0.4.2 writes: no extra fields, FNAME if the name is Latin-1.
fn gzip_header(file_name: &str, mtime: u32) -> Vec<u8> {
    let name = file_name.strip_suffix(".gz").unwrap_or(file_name);
    let latin1: Option<Vec<u8>> = name
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok().filter(|&b| b != 0))
        .collect();
    let latin1 = latin1.filter(|bytes| !bytes.is_empty());
    let mut header = vec![0x1f, 0x8b, 0x08, if latin1.is_some() { FNAME } else { 0 }];
    header.extend_from_slice(&mtime.to_le_bytes());
    header.extend_from_slice(&[0x00, 0xff]);
    if let Some(bytes) = latin1 {
        header.extend_from_slice(&bytes);
        header.push(0);
    }
    header
}

/// A modification time as gzip's MTIME: seconds since the epoch, 0 if unknown or out of range.
fn gzip_mtime(time: SystemTime) -> u32 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| u32::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// Raw deflate at level 6 into a [`PieceWriter`].
struct Deflater<'a, 'b> {
    path: &'a Path,
    compress: Compress,
    out: Vec<u8>,
    pieces: &'a mut PieceWriter<'b>,
}

impl<'a, 'b> Deflater<'a, 'b> {
    /// A level-6 raw deflater.
    fn new(path: &'a Path, pieces: &'a mut PieceWriter<'b>) -> Self {
        Self {
            path,
            compress: Compress::new(Compression::new(6), false),
            out: Vec::with_capacity(BUFFER),
            pieces,
        }
    }

    /// Compresses all of `input`; with `Finish`, also ends the stream.
    fn push(&mut self, mut input: &[u8], flush: FlushCompress) -> Result<(), DiskError> {
        loop {
            self.out.clear();
            let before = self.compress.total_in();
            let status = self
                .compress
                .compress_vec(input, &mut self.out, flush)
                .map_err(|err| DiskError::Compress {
                    path: self.path.to_path_buf(),
                    offset: self.compress.total_in(),
                    source: io::Error::other(err),
                })?;
            // total_in grows by at most input.len(), which is a usize.
            input = &input[(self.compress.total_in() - before) as usize..];
            self.pieces.write(&self.out)?;
            let output_full = self.out.len() == self.out.capacity();
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => input.is_empty() && !output_full,
            };
            if done {
                return Ok(());
            }
        }
    }
}

/// Cuts a byte stream into blobs of `chunk_size` bytes.
struct PieceWriter<'a> {
    sink: &'a dyn BlobSink,
    chunk_size: Option<u64>,
    current: Option<TempBlob<'a>>,
    done: Vec<StoredBlob>,
}

impl PieceWriter<'_> {
    /// Appends bytes, starting new pieces as needed.
    fn write(&mut self, mut bytes: &[u8]) -> Result<(), DiskError> {
        while !bytes.is_empty() {
            let current = match &mut self.current {
                Some(current) => current,
                None => self.current.insert(TempBlob::new(self.sink)?),
            };
            let room = self
                .chunk_size
                .map_or(u64::MAX, |size| size - current.size());
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
            current.write(&bytes[..take])?;
            bytes = &bytes[take..];
            if Some(current.size()) == self.chunk_size {
                self.finish_piece()?;
            }
        }
        Ok(())
    }

    /// Stores the current piece, if any.
    fn finish_piece(&mut self) -> Result<(), DiskError> {
        if let Some(current) = self.current.take() {
            self.done.push(current.finish()?);
        }
        Ok(())
    }

    /// Stores the last piece and returns all of them.
    fn finish(mut self) -> Result<Vec<StoredBlob>, DiskError> {
        self.finish_piece()?;
        Ok(self.done)
    }
}

/// Parses a gzip member header from the start of `bytes` (untrusted input).
///
/// Rejects a wrong magic or method, reserved flags, a header running past `bytes`, an FNAME longer than
/// [`MAX_NAME_LEN`], an FCOMMENT longer than [`MAX_COMMENT_LEN`] and a wrong header CRC.
pub fn parse_gzip_header(bytes: &[u8]) -> Result<GzipHeader, DiskError> {
    let fail = |reason: &str| DiskError::GzipHeader {
        reason: reason.to_owned(),
    };
    let fixed = bytes
        .get(..10)
        .ok_or_else(|| fail("the data ends inside the header"))?;
    if fixed[..2] != [0x1f, 0x8b] {
        return Err(fail("not gzip data (wrong magic)"));
    }
    if fixed[2] != 8 {
        return Err(fail("unknown compression method (not deflate)"));
    }
    let flags = fixed[3];
    if flags & FRESERVED != 0 {
        return Err(fail("reserved flag bits are set"));
    }
    let mtime = u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let len = bytes
            .get(pos..pos + 2)
            .ok_or_else(|| fail("the data ends inside the extra field"))?;
        pos += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
        if pos > bytes.len() {
            return Err(fail("the data ends inside the extra field"));
        }
    }
    let mut fname = None;
    if flags & FNAME != 0 {
        let name = zero_terminated(bytes, pos, MAX_NAME_LEN)
            .map_err(|what| fail(&format!("file name {what}")))?;
        pos += name.len() + 1;
        fname = Some(name.iter().map(|&b| char::from(b)).collect());
    }
    if flags & FCOMMENT != 0 {
        let comment = zero_terminated(bytes, pos, MAX_COMMENT_LEN)
            .map_err(|what| fail(&format!("comment {what}")))?;
        pos += comment.len() + 1;
    }
    if flags & FHCRC != 0 {
        let stored = bytes
            .get(pos..pos + 2)
            .ok_or_else(|| fail("the data ends inside the header CRC"))?;
        let actual = crc32fast::hash(&bytes[..pos]) as u16;
        if u16::from_le_bytes([stored[0], stored[1]]) != actual {
            return Err(fail("the header CRC does not match"));
        }
        pos += 2;
    }
    Ok(GzipHeader {
        fname,
        mtime,
        header_len: pos,
    })
}

/// The bytes from `start` up to (not including) the next NUL, at most `max` of them.
fn zero_terminated(bytes: &[u8], start: usize, max: usize) -> Result<&[u8], &'static str> {
    let rest = bytes.get(start..).unwrap_or_default();
    let window = &rest[..rest.len().min(max + 1)];
    match window.iter().position(|&b| b == 0) {
        Some(end) => Ok(&window[..end]),
        None if rest.len() > max => Err("is too long"),
        None => Err("is not terminated (the data ends inside it)"),
    }
}

/// How large an unpacked legacy file may become. A gzip stream declares no size (its trailer
/// has the length modulo 2^32, at the very end), and deflate expands up to 1032:1, so without a
/// bound one small layer could fill the VM directory's file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// The most bytes the file may have (a configured maximum disk size). A qcow2 image is
    /// further bounded by its header's virtual size ([`qcow2_file_bound`]).
    pub max_size: u64,
    /// The most bytes that may be written to disk (holes excluded): the free space the file may
    /// take.
    pub max_written: u64,
}

impl UnpackLimits {
    /// No bounds (for files of trusted origin, and tests).
    pub const UNBOUNDED: UnpackLimits = UnpackLimits {
        max_size: u64::MAX,
        max_written: u64::MAX,
    };
}

/// The most bytes a qcow2 image file of virtual size `virtual_size` may reasonably have: the
/// data, plus an eighth for its tables (L2 tables with subclusters take 1/32 at the smallest
/// cluster size, refcounts less), plus 64 MiB.
pub fn qcow2_file_bound(virtual_size: u64) -> u64 {
    virtual_size
        .saturating_add(virtual_size / 8)
        .saturating_add(64 << 20)
}

/// The gzip header of the file that `pieces` make up, and the reader positioned after it.
fn open_stream<'a>(
    pieces: &'a [PathBuf],
    first: &Path,
) -> Result<(GzipHeader, impl Read + 'a), DiskError> {
    let stream_error = |reason: String| DiskError::GzipStream {
        first_piece: first.to_path_buf(),
        reason,
    };
    if pieces.is_empty() {
        return Err(stream_error("there are no pieces".to_owned()));
    }
    let mut reader = PiecesReader {
        pieces,
        next: 0,
        current: None,
    };
    let mut prefix = Vec::new();
    (&mut reader)
        .take(MAX_HEADER_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(|err| read_error(err, first))?;
    let header = parse_gzip_header(&prefix).map_err(|err| stream_error(err.to_string()))?;
    let rest = Cursor::new(prefix.split_off(header.header_len));
    Ok((header, rest.chain(reader)))
}

/// The name the file that `pieces` make up gets (its FNAME, or `fallback_name` without one),
/// checked to be safe, read from its gzip header alone: what the domain XML policy needs to know
/// before anything is unpacked.
pub fn file_name(pieces: &[PathBuf], fallback_name: &str) -> Result<String, DiskError> {
    let first = pieces.first().cloned().unwrap_or_default();
    let (header, _) = open_stream(pieces, &first)?;
    checked_name(&header, fallback_name)
}

/// The file's FNAME, or `fallback_name`, if it is safe.
fn checked_name(header: &GzipHeader, fallback_name: &str) -> Result<String, DiskError> {
    let name = header
        .fname
        .clone()
        .unwrap_or_else(|| fallback_name.to_owned());
    crate::names::check_file_name(&name)?;
    Ok(name)
}

/// Decompresses one file from its pieces into `out_dir/<FNAME>` (or `fallback_name` without FNAME),
/// stopping with [`DiskError::LegacyFileTooLarge`] as soon as it outgrows `limits`.
///
/// The file is created fresh (never overwriting, never following a symlink) and written sparsely; the
/// gzip CRC and length are verified, and trailing data after the member is an error. Returns the name,
/// the sha256 of the uncompressed data and its size. On error the partial file is removed.
pub fn unpack_file(
    pieces: &[PathBuf],
    out_dir: &Path,
    fallback_name: &str,
    limits: &UnpackLimits,
) -> Result<(String, Digest, u64), DiskError> {
    let first = pieces
        .first()
        .cloned()
        .unwrap_or_else(|| out_dir.to_path_buf());
    let stream_error = |reason: String| DiskError::GzipStream {
        first_piece: first.clone(),
        reason,
    };
    let (header, reader) = open_stream(pieces, &first)?;
    let name = checked_name(&header, fallback_name)?;
    let mut input = BufReader::with_capacity(BUFFER, reader);
    let path = out_dir.join(&name);
    let output = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(DiskError::io("create", &path))?;
    let mut sink = BoundedSink {
        file: &output,
        path: &path,
        name: &name,
        limits: *limits,
        size: 0,
        written: 0,
        size_bound: "the maximum disk size".to_owned(),
    };
    let result = inflate_into(&mut input, &mut sink, &first).and_then(|(digest, size)| {
        output
            .set_len(size)
            .map_err(DiskError::io("set the size of", &path))?;
        if header.mtime != 0 {
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(header.mtime.into());
            output
                .set_modified(mtime)
                .map_err(DiskError::io("set the time of", &path))?;
        }
        output.sync_all().map_err(DiskError::io("flush", &path))?;
        Ok((name, digest, size))
    });
    if result.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ignored = fs_err::remove_file(&path);
    }
    result.map_err(|err| match err {
        DiskError::GzipHeader { reason } => stream_error(reason),
        other => other,
    })
}

/// Where an unpacked file goes: written sparsely, and refused as soon as it outgrows its limits.
struct BoundedSink<'a> {
    file: &'a fs_err::File,
    path: &'a Path,
    name: &'a str,
    limits: UnpackLimits,
    /// Bytes so far.
    size: u64,
    /// Bytes written to disk so far (holes excluded).
    written: u64,
    /// Where `limits.max_size` comes from.
    size_bound: String,
}

impl BoundedSink<'_> {
    /// Appends `data` within the limits (the first call gets the start of the file: a qcow2
    /// header there lowers the size limit to what its virtual size allows).
    fn write(&mut self, data: &[u8]) -> Result<(), DiskError> {
        if self.size == 0
            && let Ok(Some(header)) = crate::qcow2::parse_header(data)
            && qcow2_file_bound(header.virtual_size) < self.limits.max_size
        {
            self.limits.max_size = qcow2_file_bound(header.virtual_size);
            self.size_bound = format!(
                "its qcow2 header's virtual size of {} bytes",
                header.virtual_size
            );
        }
        let size = self.size.saturating_add(data.len() as u64);
        if size > self.limits.max_size {
            return Err(self.too_large(self.limits.max_size, self.size_bound.clone()));
        }
        let written = sparse::write_sparse_at(self.file.file(), self.size, data)
            .map_err(DiskError::io("write", self.path))?;
        self.size = size;
        self.written = self.written.saturating_add(written);
        if self.written > self.limits.max_written {
            let bound = "the free space that may be used".to_owned();
            return Err(self.too_large(self.limits.max_written, bound));
        }
        Ok(())
    }

    fn too_large(&self, limit: u64, bound: String) -> DiskError {
        DiskError::LegacyFileTooLarge {
            name: self.name.to_owned(),
            limit,
            bound,
        }
    }
}

/// Inflates the deflate data and trailer from `input` into `output`; returns the digest and size.
///
/// Stream problems come back as [`DiskError::GzipHeader`] reasons, which the caller turns into
/// [`DiskError::GzipStream`].
fn inflate_into(
    input: &mut impl BufRead,
    output: &mut BoundedSink<'_>,
    first: &Path,
) -> Result<(Digest, u64), DiskError> {
    let fail = |reason: &str| DiskError::GzipHeader {
        reason: reason.to_owned(),
    };
    let mut inflater = Decompress::new(false);
    let mut out = vec![0u8; BUFFER];
    let mut filled = 0;
    let mut hasher = Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    loop {
        let chunk = input.fill_buf().map_err(|err| read_error(err, first))?;
        let eof = chunk.is_empty();
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress(chunk, &mut out[filled..], FlushDecompress::None)
            .map_err(|_| fail("the deflate data is corrupt"))?;
        // Both counters grow by at most the lengths of the slices passed in.
        let consumed = (inflater.total_in() - in_before) as usize;
        let produced = (inflater.total_out() - out_before) as usize;
        input.consume(consumed);
        filled += produced;
        let end = status == Status::StreamEnd;
        if filled == out.len() || (end && filled > 0) {
            hasher.update(&out[..filled]);
            crc.update(&out[..filled]);
            output.write(&out[..filled])?;
            size += filled as u64;
            filled = 0;
        }
        if end {
            break;
        }
        if eof && consumed == 0 && produced == 0 {
            return Err(fail(
                "the data is truncated (the deflate stream does not end)",
            ));
        }
    }
    check_trailer(input, crc.finalize(), size, first)?;
    Ok((Digest::from_hasher(hasher), size))
}

/// Checks the CRC-32 and ISIZE trailer and that nothing follows it.
fn check_trailer(
    input: &mut impl BufRead,
    crc: u32,
    size: u64,
    first: &Path,
) -> Result<(), DiskError> {
    let fail = |reason: &str| DiskError::GzipHeader {
        reason: reason.to_owned(),
    };
    let mut trailer = [0u8; 8];
    match input.read_exact(&mut trailer) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(fail("the data is truncated (the gzip trailer is missing)"));
        }
        Err(err) => return Err(read_error(err, first)),
    }
    if u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) != crc {
        return Err(fail("the CRC-32 of the data does not match"));
    }
    // ISIZE is the length modulo 2^32.
    if u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) != size as u32 {
        return Err(fail("the length of the data does not match"));
    }
    if !input
        .fill_buf()
        .map_err(|err| read_error(err, first))?
        .is_empty()
    {
        return Err(fail(
            "there is data after the gzip member (a second member or garbage)",
        ));
    }
    Ok(())
}

/// Reads the pieces one after the other as one stream.
struct PiecesReader<'a> {
    pieces: &'a [PathBuf],
    next: usize,
    current: Option<fs_err::File>,
}

impl Read for PiecesReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let current = match &mut self.current {
                Some(current) => current,
                None => {
                    let Some(path) = self.pieces.get(self.next) else {
                        return Ok(0);
                    };
                    self.next += 1;
                    self.current.insert(
                        fs_err::File::open(path).map_err(|err| PieceError::wrap(path, err))?,
                    )
                }
            };
            match current.read(buf) {
                Ok(0) if !buf.is_empty() => self.current = None,
                Ok(n) => return Ok(n),
                Err(err) => return Err(PieceError::wrap(current.path(), err)),
            }
        }
    }
}

/// Carries the piece path of an I/O error through `io::Read` back to a [`DiskError`].
#[derive(Debug)]
struct PieceError {
    path: PathBuf,
    source: io::Error,
}

impl std::fmt::Display for PieceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not read '{}'", self.path.display())
    }
}

impl std::error::Error for PieceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl PieceError {
    /// Wraps an error reading `path` into an `io::Error`.
    fn wrap(path: &Path, source: io::Error) -> io::Error {
        io::Error::other(PieceError {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Turns an error from reading the pieces back into a [`DiskError`] naming the piece (or `first`).
fn read_error(err: io::Error, first: &Path) -> DiskError {
    let (path, source) = match err.downcast::<PieceError>() {
        Ok(piece) => (piece.path, piece.source),
        Err(other) => (first.to_path_buf(), other),
    };
    DiskError::Io {
        action: "read legacy layer blob",
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_like_0_4_2_writes_it() {
        let header = gzip_header("disk.qcow2.gz", 0x0102_0304);
        let mut expected = vec![0x1f, 0x8b, 8, 8, 4, 3, 2, 1, 0, 0xff];
        expected.extend_from_slice(b"disk.qcow2\0");
        assert_eq!(header, expected);
        let parsed = parse_gzip_header(&header).unwrap();
        assert_eq!(
            parsed,
            GzipHeader {
                fname: Some("disk.qcow2".into()),
                mtime: 0x0102_0304,
                header_len: header.len()
            }
        );
    }

    #[test]
    fn latin1_names_round_trip_and_others_are_dropped() {
        let parsed = parse_gzip_header(&gzip_header("café.img", 0)).unwrap();
        assert_eq!(parsed.fname.as_deref(), Some("café.img"));
        let header = gzip_header("диск.img", 0);
        assert_eq!(header[3], 0);
        assert_eq!(parse_gzip_header(&header).unwrap().fname, None);
        assert_eq!(
            parse_gzip_header(&gzip_header(".gz", 0)).unwrap().fname,
            None
        );
    }

    #[test]
    fn all_optional_fields_are_skipped_and_the_header_crc_checked() {
        let mut header = vec![
            0x1f,
            0x8b,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        header.extend_from_slice(&[3, 0, b'a', b'b', b'c']);
        header.extend_from_slice(b"name\0comment\0");
        let crc = crc32fast::hash(&header) as u16;
        header.extend_from_slice(&crc.to_le_bytes());
        let parsed = parse_gzip_header(&header).unwrap();
        assert_eq!(parsed.fname.as_deref(), Some("name"));
        assert_eq!(parsed.header_len, header.len());
        let last = header.len() - 1;
        header[last] ^= 1;
        assert!(parse_gzip_header(&header).is_err());
    }

    #[test]
    fn hostile_headers_are_rejected() {
        let base = |flags: u8| vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 0xff];
        let mut huge_name = base(FNAME);
        huge_name.extend(std::iter::repeat_n(b'a', MAX_NAME_LEN + 10));
        huge_name.push(0);
        let mut unterminated = base(FNAME);
        unterminated.extend_from_slice(b"disk.img");
        let mut huge_comment = base(FCOMMENT);
        huge_comment.extend(std::iter::repeat_n(b'c', MAX_COMMENT_LEN + 1));
        huge_comment.push(0);
        let mut short_extra = base(FEXTRA);
        short_extra.extend_from_slice(&[0xff, 0xff, 1, 2, 3]);
        let mut reserved = base(FNAME);
        reserved[3] |= 0x80;
        let mut method = base(0);
        method[2] = 7;
        for (what, bytes) in [
            ("empty", Vec::new()),
            ("short", vec![0x1f, 0x8b, 8]),
            ("magic", vec![0u8; 10]),
            ("huge name", huge_name),
            ("unterminated name", unterminated),
            ("huge comment", huge_comment),
            ("short extra", short_extra),
            ("reserved flags", reserved),
            ("method", method),
            ("missing header crc", base(FHCRC)),
        ] {
            assert!(
                matches!(parse_gzip_header(&bytes), Err(DiskError::GzipHeader { .. })),
                "{what} accepted"
            );
        }
    }

    #[test]
    fn parser_returns_unsafe_names_for_the_caller_to_reject() {
        for name in [
            "../etc/passwd",
            "a/b",
            "..",
            ".hidden",
            "",
            "nbd:127.0.0.1:10809",
        ] {
            let mut header = vec![0x1f, 0x8b, 8, FNAME, 0, 0, 0, 0, 0, 0xff];
            header.extend_from_slice(name.as_bytes());
            header.push(0);
            let fname = parse_gzip_header(&header).unwrap().fname.unwrap();
            assert!(
                matches!(
                    crate::names::check_file_name(&fname),
                    Err(DiskError::UnsafeFileName { .. })
                ),
                "{name:?} passed"
            );
        }
        crate::names::check_file_name("disk.qcow2").unwrap();
    }

    #[test]
    fn media_types_round_trip() {
        assert_eq!(media_type(MIME_QCOW2, 0), MEDIA_TYPE_QCOW2_GZIP);
        assert_eq!(media_type(MIME_RAW, 0), MEDIA_TYPE_RAW_GZIP);
        assert_eq!(
            media_type(MIME_QCOW2, 3),
            "application/x-qemu-disk+gzip;chunk=3"
        );
        for index in [0, 1, 17] {
            assert_eq!(
                parse_media_type(&media_type(MIME_QCOW2, index)),
                Some((MIME_QCOW2, index))
            );
        }
        assert_eq!(
            parse_media_type("application/x-qemu-disk+gzip; chunk=2 ; foo=bar"),
            Some((MIME_QCOW2, 2))
        );
        for bad in [
            "application/x-qemu-disk",
            "+gzip",
            "a+gzip;chunk=x",
            "a+gzip;chunk",
            "a+gzip;chunk=-1",
        ] {
            assert_eq!(parse_media_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn mtime_out_of_range_is_zero() {
        assert_eq!(
            gzip_mtime(SystemTime::UNIX_EPOCH + Duration::from_secs(5)),
            5
        );
        assert_eq!(
            gzip_mtime(SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 33)),
            0
        );
        assert_eq!(
            gzip_mtime(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            0
        );
    }
}
