//! qcow2 images: header parsing and backing chains without `qemu-img`, and overlay creation with it.
//!
//! Headers are untrusted input (they come from images pulled from registries), so every offset and
//! length is checked against the bytes at hand and against the first cluster, where qemu requires the
//! header, its extensions and the backing file name to live.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::DiskError;

/// The first four bytes of every qcow2 image.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// The longest backing chain followed.
pub const MAX_CHAIN_DEPTH: usize = 64;

/// qemu's limit on the length of a backing file name.
const MAX_BACKING_NAME: u64 = 1023;
/// Size of a version 2 header.
const V2_HEADER_LEN: usize = 72;
/// Minimum size of a version 3 header.
const V3_HEADER_LEN: usize = 104;
/// Header extension type of the backing file format name.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Header extension type of the external data file name.
const EXT_DATA_FILE: u32 = 0x4441_5441;
/// Incompatible feature bit: the guest data lives in an external data file.
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Smallest and largest cluster sizes qemu accepts, as powers of two.
const CLUSTER_BITS: std::ops::RangeInclusive<u32> = 9..=21;

/// The parts of a qcow2 header this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    /// Format version (2 or 3).
    pub version: u32,
    /// Size of the virtual disk in bytes.
    pub virtual_size: u64,
    /// The backing file name as stored (may be relative to the image's directory).
    pub backing_file: Option<String>,
    /// The backing file's format, from the header extension.
    pub backing_format: Option<String>,
    /// Whether the image keeps its data in an external data file (version 3 incompatible
    /// feature bit 2): qemu then opens another file, named by [`Qcow2Header::data_file`] or by
    /// whoever opens the image.
    pub external_data: bool,
    /// The external data file's name, from the header extension (may be relative to the
    /// image's directory, or absolute).
    pub data_file: Option<String>,
}

/// One image of a backing chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainElement {
    /// Where the image is (relative backing names resolved against the referring image's directory).
    pub path: PathBuf,
    /// Its format (checked against what the referring image declares).
    pub format: Format,
    /// The backing file name as written in this image.
    pub stored_backing: Option<String>,
}

/// The only two formats a disk file may have. QEMU's other formats (`qed`, `vmdk`, `vhdx`,
/// `luks`, ...) can name further files or need host secrets, and are never opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A qcow2 image (starts with [`MAGIC`]).
    Qcow2,
    /// Plain bytes.
    Raw,
}

impl Format {
    /// The format as QEMU and libvirt name it; `None` for every other format.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "qcow2" => Some(Format::Qcow2),
            "raw" => Some(Format::Raw),
            _ => None,
        }
    }

    /// QEMU's name of the format.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Qcow2 => "qcow2",
            Format::Raw => "raw",
        }
    }

    /// The real format of a file whose header (from [`read_header`]) is `header`.
    pub fn of(header: Option<&Qcow2Header>) -> Format {
        match header {
            Some(_) => Format::Qcow2,
            None => Format::Raw,
        }
    }
}

/// The backing file a qcow2 image asks QEMU to open, as [`Qcow2Header::backing_link`] checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingLink {
    /// The name as stored (relative to the image's directory, or absolute).
    pub name: String,
    /// The format QEMU opens it as: the declared one, else qcow2 (see [`check_backing_format`]).
    pub format: Format,
    /// Whether the image declares the format (the backing format header extension).
    pub declared: bool,
}

impl Qcow2Header {
    /// What this image makes QEMU open besides itself, if anything: its backing file. Refuses
    /// (with the reason) an external data file, a backing format other than qcow2 or raw, and a
    /// backing name that QEMU reads as a protocol or JSON (`nbd:…`, `json:{…}`): only files.
    pub fn backing_link(&self) -> Result<Option<BackingLink>, String> {
        if self.external_data || self.data_file.is_some() {
            let target = self
                .data_file
                .as_deref()
                .unwrap_or("a file chosen at run time");
            return Err(format!(
                "it is a qcow2 image with an external data file (\"{}\")",
                target.escape_debug()
            ));
        }
        let Some(name) = self.backing_file.clone() else {
            return Ok(None);
        };
        if crate::names::qemu_reads_as_protocol(&name) {
            return Err(format!(
                "its qcow2 header names the backing file \"{}\", which QEMU reads as a protocol, not a file",
                name.escape_debug()
            ));
        }
        let format = match self.backing_format.as_deref() {
            None => Format::Qcow2,
            Some(declared) => Format::parse(declared).ok_or_else(|| {
                format!(
                    "its backing file has the format \"{}\" (only qcow2 and raw are allowed)",
                    declared.escape_debug()
                )
            })?,
        };
        Ok(Some(BackingLink {
            name,
            format,
            declared: self.backing_format.is_some(),
        }))
    }
}

/// Checks that the backing file of `link` really has the format QEMU will open it as; `real` is
/// the backing file's own header ([`read_header`]). Without a declared format QEMU guesses it
/// from the file's contents; that is only safe when the file is qcow2 (its magic leaves QEMU no
/// other guess), so an undeclared format is accepted for qcow2 backing files only: a raw file's
/// bytes are the guest's to choose, and could look like any format.
pub fn check_backing_format(link: &BackingLink, real: Option<&Qcow2Header>) -> Result<(), String> {
    let real = Format::of(real);
    if real == link.format {
        return Ok(());
    }
    let name = link.name.escape_debug();
    Err(if link.declared {
        format!(
            "it declares its backing file \"{name}\" as {}, but that file is {}",
            link.format.as_str(),
            real.as_str()
        )
    } else {
        format!(
            "it declares no format for its backing file \"{name}\", which is not qcow2 (QEMU would guess the format from the file's contents)"
        )
    })
}

/// Parses a qcow2 header from the start of an image. `None` if the bytes do not start with the qcow2
/// magic. `bytes` should hold the first cluster (or the whole file, if smaller).
pub fn parse_header(bytes: &[u8]) -> Result<Option<Qcow2Header>, DiskError> {
    if bytes.get(..4) != Some(&MAGIC[..]) {
        return Ok(None);
    }
    let fail = |reason: String| DiskError::Qcow2Header { reason };
    let header = Reader(bytes);
    let version = header
        .u32_at(4)
        .ok_or_else(|| fail("the header is truncated".to_owned()))?;
    let min_len = match version {
        2 => V2_HEADER_LEN,
        3 => V3_HEADER_LEN,
        other => return Err(fail(format!("unsupported version {other}"))),
    };
    if bytes.len() < min_len {
        return Err(fail("the header is truncated".to_owned()));
    }
    let backing_offset = header.u64_at(8).unwrap_or_default();
    let backing_len = header.u32_at(16).unwrap_or_default();
    let cluster_bits = header.u32_at(20).unwrap_or_default();
    let virtual_size = header.u64_at(24).unwrap_or_default();
    if !CLUSTER_BITS.contains(&cluster_bits) {
        return Err(fail(format!("invalid cluster size 2^{cluster_bits}")));
    }
    let cluster = 1u64 << cluster_bits;
    let header_len = if version == 3 {
        header.u32_at(100).unwrap_or_default() as usize
    } else {
        V2_HEADER_LEN
    };
    if header_len < min_len || header_len as u64 > cluster {
        return Err(fail(format!("invalid header length {header_len}")));
    }
    let backing_file = backing_name(bytes, backing_offset, backing_len, cluster).map_err(fail)?;
    let extensions_end = if backing_offset == 0 {
        cluster
    } else {
        backing_offset
    };
    let extensions = extensions(bytes, header_len, extensions_end).map_err(fail)?;
    let incompatible = if version == 3 {
        header.u64_at(72).unwrap_or_default()
    } else {
        0
    };
    Ok(Some(Qcow2Header {
        version,
        virtual_size,
        backing_file,
        backing_format: extensions.backing_format,
        external_data: incompatible & INCOMPAT_DATA_FILE != 0,
        data_file: extensions.data_file,
    }))
}

/// Big-endian reads with bounds checks.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    /// The big-endian u32 at `pos`, if the bytes reach that far.
    fn u32_at(&self, pos: usize) -> Option<u32> {
        Some(u32::from_be_bytes(
            self.0.get(pos..pos.checked_add(4)?)?.try_into().ok()?,
        ))
    }

    /// The big-endian u64 at `pos`, if the bytes reach that far.
    fn u64_at(&self, pos: usize) -> Option<u64> {
        Some(u64::from_be_bytes(
            self.0.get(pos..pos.checked_add(8)?)?.try_into().ok()?,
        ))
    }
}

/// The backing file name stored at `offset` (0: none), checked to lie within the first cluster.
fn backing_name(
    bytes: &[u8],
    offset: u64,
    len: u32,
    cluster: u64,
) -> Result<Option<String>, String> {
    if offset == 0 {
        return Ok(None);
    }
    let len = u64::from(len);
    if len == 0 || len > MAX_BACKING_NAME {
        return Err(format!("invalid backing file name length {len}"));
    }
    let end = offset
        .checked_add(len)
        .filter(|&end| end <= cluster && offset >= V2_HEADER_LEN as u64);
    let range = end
        .and_then(|end| Some(usize::try_from(offset).ok()?..usize::try_from(end).ok()?))
        .ok_or_else(|| {
            format!("the backing file name at offset {offset} lies outside the first cluster")
        })?;
    let raw = bytes
        .get(range)
        .ok_or_else(|| "the backing file name lies past the end of the image".to_owned())?;
    text(raw, "backing file name").map(Some)
}

/// The header extensions this crate reads.
#[derive(Debug, Default)]
struct Extensions {
    backing_format: Option<String>,
    data_file: Option<String>,
}

/// The backing format and data file name from the header extensions between `start` and `end`.
fn extensions(bytes: &[u8], start: usize, end: u64) -> Result<Extensions, String> {
    let reader = Reader(bytes);
    let end = usize::try_from(end).unwrap_or(usize::MAX).min(bytes.len());
    let mut pos = start;
    let mut found = Extensions::default();
    while pos.saturating_add(8) <= end {
        let (Some(kind), Some(len)) = (reader.u32_at(pos), reader.u32_at(pos + 4)) else {
            break;
        };
        if kind == 0 {
            break;
        }
        let data_start = pos + 8;
        let data_end = data_start.checked_add(len as usize).filter(|&e| e <= end);
        let data = data_end
            .and_then(|data_end| bytes.get(data_start..data_end))
            .ok_or_else(|| format!("header extension {kind:#x} runs past the header area"))?;
        match kind {
            EXT_BACKING_FORMAT => found.backing_format = Some(text(data, "backing format")?),
            EXT_DATA_FILE => found.data_file = Some(text(data, "external data file name")?),
            _ => {}
        }
        pos = data_start + (len as usize).next_multiple_of(8);
    }
    Ok(found)
}

/// Decodes a name from a header: UTF-8 without NUL bytes.
fn text(raw: &[u8], what: &str) -> Result<String, String> {
    match std::str::from_utf8(raw) {
        Ok(name) if !name.contains('\0') => Ok(name.to_owned()),
        _ => Err(format!("the {what} is not valid UTF-8 text")),
    }
}

/// Reads the header of the image at `path`; `None` if it is not a qcow2 image.
pub fn read_header(path: &Path) -> Result<Option<Qcow2Header>, DiskError> {
    let file = fs_err::File::open(path).map_err(DiskError::io("open", path))?;
    let mut first_cluster = Vec::new();
    file.take(1 << CLUSTER_BITS.end())
        .read_to_end(&mut first_cluster)
        .map_err(DiskError::io("read", path))?;
    parse_header(&first_cluster).map_err(|err| match err {
        DiskError::Qcow2Header { reason } => DiskError::Qcow2Image {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    })
}

/// The backing chain of `path`: the image itself first, then its backing files in order. A relative
/// backing name is resolved against the directory of the image that names it (as qemu does).
///
/// This is the chain QEMU opens for `path` opened as qcow2 (or raw: a chain of one), checked
/// image by image before anything is opened by anyone else: every element is a regular file,
/// every link passes [`Qcow2Header::backing_link`] and [`check_backing_format`]. Fails on a
/// missing backing file, a loop, or a chain longer than [`MAX_CHAIN_DEPTH`].
pub fn backing_chain(path: &Path) -> Result<Vec<ChainElement>, DiskError> {
    let mut chain: Vec<ChainElement> = Vec::new();
    let mut seen = HashSet::new();
    let mut current = path.to_path_buf();
    let mut link: Option<BackingLink> = None;
    loop {
        if chain.len() >= MAX_CHAIN_DEPTH {
            return Err(DiskError::BackingChainTooDeep {
                top: path.to_path_buf(),
                limit: MAX_CHAIN_DEPTH,
            });
        }
        let referrer = chain.last().map_or(path, |element| &element.path);
        let meta = fs_err::metadata(&current).map_err(|source| match &link {
            Some(link) => DiskError::BackingFileMissing {
                image: referrer.to_path_buf(),
                backing: link.name.clone(),
                resolved: current.clone(),
                source,
            },
            None => DiskError::Io {
                action: "open",
                path: current.clone(),
                source,
            },
        })?;
        // Reading a FIFO would block; a device is never a disk file of a chain.
        if !meta.is_file() {
            let reason = match &link {
                Some(_) => format!(
                    "its backing file '{}' is not a regular file",
                    current.display()
                ),
                None => "it is not a regular file".to_owned(),
            };
            return Err(unsafe_image(referrer, reason));
        }
        if !seen.insert((meta.dev(), meta.ino())) {
            return Err(DiskError::BackingChainLoop {
                top: path.to_path_buf(),
                repeated: current,
            });
        }
        let header = read_header(&current)?;
        if let Some(link) = &link {
            check_backing_format(link, header.as_ref()).map_err(|r| unsafe_image(referrer, r))?;
        }
        link = match &header {
            Some(header) => header
                .backing_link()
                .map_err(|r| unsafe_image(&current, r))?,
            None => None,
        };
        let next = link
            .as_ref()
            .map(|link| resolve_backing(&current, &link.name));
        chain.push(ChainElement {
            path: current,
            format: Format::of(header.as_ref()),
            stored_backing: link.as_ref().map(|link| link.name.clone()),
        });
        match next {
            Some(next) => current = next,
            None => return Ok(chain),
        }
    }
}

/// The error for an image that would make QEMU open what it must not.
fn unsafe_image(path: &Path, reason: String) -> DiskError {
    DiskError::UnsafeImage {
        path: path.to_path_buf(),
        reason,
    }
}

/// Where the backing file `name` of `image` is: absolute names as they are, relative ones against the
/// image's directory.
fn resolve_backing(image: &Path, name: &str) -> PathBuf {
    let dir = image.parent().unwrap_or_else(|| Path::new(""));
    dir.join(name)
}

/// Creates a qcow2 overlay on `backing` (as written into the overlay: relative names are relative to the
/// overlay's directory), whose format is `backing_format`, with
/// `qemu-img create -q -f qcow2 -F <backing_format> -b <backing> <overlay>`.
///
/// qemu-img opens the backing chain (for the virtual size): check it first with
/// [`backing_chain`]. A backing name that QEMU would read as a protocol is refused here.
pub fn create_overlay(
    backing: &str,
    backing_format: Format,
    overlay: &Path,
) -> Result<(), DiskError> {
    if crate::names::qemu_reads_as_protocol(backing) {
        return Err(unsafe_image(
            overlay,
            format!(
                "its backing file would be \"{}\", which QEMU reads as a protocol, not a file",
                backing.escape_debug()
            ),
        ));
    }
    let output = Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            backing_format.as_str(),
            "-b",
            backing,
        ])
        .arg(overlay)
        .output()
        .map_err(|source| DiskError::QemuImgSpawn { source })?;
    if output.status.success() {
        return Ok(());
    }
    Err(DiskError::QemuImgFailed {
        overlay: overlay.to_path_buf(),
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 header with a backing file name and format extension.
    fn v3_header(backing: Option<&str>, format: Option<&str>) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        let mut pos = 112;
        if let Some(format) = format {
            h[pos..pos + 4].copy_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
            h[pos + 4..pos + 8].copy_from_slice(&(format.len() as u32).to_be_bytes());
            h[pos + 8..pos + 8 + format.len()].copy_from_slice(format.as_bytes());
            pos += 8 + format.len().next_multiple_of(8);
        }
        pos += 8; // end-of-extensions marker (zeros)
        if let Some(name) = backing {
            h[8..16].copy_from_slice(&(pos as u64).to_be_bytes());
            h[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
            h[pos..pos + name.len()].copy_from_slice(name.as_bytes());
        }
        h
    }

    #[test]
    fn parses_a_v3_header_with_backing_file_and_format() {
        let header = parse_header(&v3_header(Some("base.qcow2"), Some("qcow2")))
            .unwrap()
            .unwrap();
        assert_eq!(header.version, 3);
        assert_eq!(header.virtual_size, 1 << 30);
        assert_eq!(header.backing_file.as_deref(), Some("base.qcow2"));
        assert_eq!(header.backing_format.as_deref(), Some("qcow2"));
        let plain = parse_header(&v3_header(None, None)).unwrap().unwrap();
        assert_eq!((plain.backing_file, plain.backing_format), (None, None));
    }

    #[test]
    fn reports_external_data_files() {
        let mut h = v3_header(None, None);
        // Extension area starts at 112: a data file name extension, then the end marker.
        let name = b"/dev/sda";
        h[112..116].copy_from_slice(&EXT_DATA_FILE.to_be_bytes());
        h[116..120].copy_from_slice(&(name.len() as u32).to_be_bytes());
        h[120..120 + name.len()].copy_from_slice(name);
        h[72..80].copy_from_slice(&INCOMPAT_DATA_FILE.to_be_bytes());
        let header = parse_header(&h).unwrap().unwrap();
        assert!(header.external_data);
        assert_eq!(header.data_file.as_deref(), Some("/dev/sda"));
        let plain = parse_header(&v3_header(Some("b"), Some("qcow2")))
            .unwrap()
            .unwrap();
        assert!(!plain.external_data);
        assert_eq!(plain.data_file, None);
    }

    #[test]
    fn non_qcow2_data_is_none() {
        assert_eq!(parse_header(b"").unwrap(), None);
        assert_eq!(parse_header(b"QFI").unwrap(), None);
        assert_eq!(parse_header(&[0u8; 512]).unwrap(), None);
    }

    #[test]
    fn hostile_headers_are_errors_not_panics() {
        let good = v3_header(Some("base.qcow2"), Some("qcow2"));
        // Truncated anywhere: never a panic.
        for len in 4..good.len() {
            let _ = parse_header(&good[..len]);
        }
        let mut bad_version = good.clone();
        bad_version[4..8].copy_from_slice(&7u32.to_be_bytes());
        let mut huge_offset = good.clone();
        huge_offset[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        let mut long_name = good.clone();
        long_name[16..20].copy_from_slice(&5000u32.to_be_bytes());
        let mut bad_cluster = good.clone();
        bad_cluster[20..24].copy_from_slice(&40u32.to_be_bytes());
        let mut huge_extension = good.clone();
        huge_extension[116..120].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut bad_header_len = good.clone();
        bad_header_len[100..104].copy_from_slice(&8u32.to_be_bytes());
        for (what, bytes) in [
            ("version", bad_version),
            ("offset", huge_offset),
            ("name length", long_name),
            ("cluster bits", bad_cluster),
            ("extension", huge_extension),
            ("header length", bad_header_len),
            ("truncated", good[..140].to_vec()),
        ] {
            assert!(parse_header(&bytes).is_err(), "{what} accepted");
        }
    }

    #[test]
    fn relative_backing_names_resolve_against_the_image_directory() {
        assert_eq!(
            resolve_backing(Path::new("/vms/a/top.qcow2"), "base.qcow2"),
            Path::new("/vms/a/base.qcow2")
        );
        assert_eq!(
            resolve_backing(Path::new("/vms/a/top.qcow2"), "/abs/b.qcow2"),
            Path::new("/abs/b.qcow2")
        );
        assert_eq!(
            resolve_backing(Path::new("top.qcow2"), "b.qcow2"),
            Path::new("b.qcow2")
        );
    }
}
