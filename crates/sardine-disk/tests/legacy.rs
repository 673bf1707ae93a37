//! Round trips and failure cases of sardinecake 0.4.2's gzip format.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::{DirSink, sparse_file, test_disk};
use sardine_disk::DiskError;
use sardine_disk::legacy::{
    self, LegacyPacked, MIME_QCOW2, MIME_RAW, UnpackLimits, pack_file, unpack_file,
};
use sardine_disk::sparse::allocated_bytes;
use sardine_testbed::{file_digest, noise};

const UNBOUNDED: UnpackLimits = UnpackLimits::UNBOUNDED;

fn piece_paths(sink: &DirSink, packed: &LegacyPacked) -> Vec<PathBuf> {
    packed
        .blobs
        .iter()
        .map(|(digest, _)| sink.blob(digest))
        .collect()
}

/// Packs a small test file in 4 KiB pieces.
fn small(dir: &Path, sink: &DirSink, name: &str) -> (PathBuf, Vec<PathBuf>) {
    let src = dir.join("src.img");
    sparse_file(
        &src,
        1 << 20,
        &[(0, noise(1, 20_000)), (500_000, b"text ".repeat(1000))],
    );
    let packed = pack_file(&src, name, Some(4096), sink).unwrap();
    (src, piece_paths(sink, &packed))
}

#[test]
fn sparse_file_round_trips_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.img");
    let size = test_disk(&src);
    let sink = DirSink::new();
    let packed = pack_file(&src, "disk.img", Some(1 << 20), &sink).unwrap();
    assert_eq!(packed.mime, MIME_RAW);
    assert_eq!(packed.uncompressed_digest, file_digest(&src));
    assert!(packed.blobs.len() > 1);
    assert!(
        packed.blobs[..packed.blobs.len() - 1]
            .iter()
            .all(|(_, s)| *s == 1 << 20)
    );
    for (digest, size) in &packed.blobs {
        assert_eq!(std::fs::metadata(sink.blob(digest)).unwrap().len(), *size);
        assert_eq!(&file_digest(&sink.blob(digest)), digest);
    }
    assert_eq!(sink.temp_count(), 0);

    let out = tempfile::tempdir().unwrap();
    let (name, digest, unpacked_size) = unpack_file(
        &piece_paths(&sink, &packed),
        out.path(),
        "fallback",
        &UNBOUNDED,
    )
    .unwrap();
    assert_eq!((name.as_str(), unpacked_size), ("disk.img", size));
    assert_eq!(digest, packed.uncompressed_digest);
    let target = out.path().join("disk.img");
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&target).unwrap());
    assert!(allocated_bytes(&target).unwrap() <= allocated_bytes(&src).unwrap() + (64 << 10));
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let seconds =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(seconds(mtime(&target)), seconds(mtime(&src)));
}

#[test]
fn output_is_a_standard_gzip_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (src, pieces) = small(dir.path(), &sink, "my disk.img.gz");
    let mut stream = Vec::new();
    for piece in &pieces {
        stream.extend(std::fs::read(piece).unwrap());
    }
    let mut decoder = flate2::read::GzDecoder::new(&stream[..]);
    let mut data = Vec::new();
    decoder.read_to_end(&mut data).unwrap();
    assert_eq!(
        decoder.header().unwrap().filename(),
        Some(&b"my disk.img"[..])
    );
    assert_eq!(data, std::fs::read(&src).unwrap());
}

#[test]
fn an_empty_file_is_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let src = dir.path().join("one.img");
    std::fs::write(&src, b"").unwrap();
    let packed = pack_file(&src, "one.img", None, &sink).unwrap();
    assert_eq!(packed.blobs.len(), 1);
    let out = tempfile::tempdir().unwrap();
    let (_, _, size) =
        unpack_file(&piece_paths(&sink, &packed), out.path(), "x", &UNBOUNDED).unwrap();
    assert_eq!(size, 0);
}

#[test]
fn a_qcow2_image_gets_the_qemu_mime_type() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.qcow2");
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("64M")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(legacy::mime_for(&image).unwrap(), MIME_QCOW2);
    let sink = DirSink::new();
    assert_eq!(
        pack_file(&image, "disk.qcow2", Some(1 << 20), &sink)
            .unwrap()
            .mime,
        MIME_QCOW2
    );
}

#[test]
fn repacking_stores_no_new_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let src = dir.path().join("src.img");
    sparse_file(&src, 300_000, &[(0, noise(1, 50_000))]);
    let first = pack_file(&src, "src.img", Some(8192), &sink).unwrap();
    let commits = sink.commits.load(std::sync::atomic::Ordering::SeqCst);
    let second = pack_file(&src, "src.img", Some(8192), &sink).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        sink.commits.load(std::sync::atomic::Ordering::SeqCst),
        commits
    );
}

/// Asserts that unpacking fails as `check` says and leaves nothing in the output directory.
fn assert_fails(pieces: &[PathBuf], check: impl Fn(&DiskError) -> bool) {
    let out = tempfile::tempdir().unwrap();
    let err = unpack_file(pieces, out.path(), "fallback.img", &UNBOUNDED).unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "a file was left behind after {err}"
    );
}

fn is_stream_error(err: &DiskError) -> bool {
    matches!(err, DiskError::GzipStream { .. })
}

#[test]
fn a_missing_last_piece_is_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (_, pieces) = small(dir.path(), &sink, "d.img");
    assert_fails(&pieces[..pieces.len() - 1], is_stream_error);
    assert_fails(&pieces[..1], is_stream_error);
    assert_fails(&[], is_stream_error);
}

#[test]
fn a_second_member_or_trailing_garbage_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (_, pieces) = small(dir.path(), &sink, "d.img");
    let mut with_second = pieces.clone();
    with_second.extend(pieces.iter().cloned());
    assert_fails(&with_second, is_stream_error);
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"\0").unwrap();
    let mut with_garbage = pieces.clone();
    with_garbage.push(garbage);
    assert_fails(&with_garbage, is_stream_error);
}

#[test]
fn corrupted_data_or_checksum_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (_, pieces) = small(dir.path(), &sink, "d.img");
    let last = pieces.len() - 1;
    for (piece, position) in [(last, 1usize), (1, 2000)] {
        let mut bytes = std::fs::read(&pieces[piece]).unwrap();
        let at = bytes.len() - position;
        bytes[at] ^= 0x10;
        let damaged = dir.path().join(format!("damaged-{piece}"));
        std::fs::write(&damaged, bytes).unwrap();
        let mut changed = pieces.clone();
        changed[piece] = damaged;
        assert_fails(&changed, is_stream_error);
    }
}

#[test]
fn unsafe_names_from_the_header_are_refused() {
    for name in ["../escape.img", "sub/dir.img", ".hidden", ".."] {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSink::new();
        let (_, pieces) = small(dir.path(), &sink, name);
        assert_fails(&pieces, |e| matches!(e, DiskError::UnsafeFileName { .. }));
        assert!(!dir.path().join("escape.img").exists());
    }
}

#[test]
fn a_name_outside_latin1_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (_, pieces) = small(dir.path(), &sink, "диск.img");
    let out = tempfile::tempdir().unwrap();
    let (name, _, _) = unpack_file(&pieces, out.path(), "fallback.img", &UNBOUNDED).unwrap();
    assert_eq!(name, "fallback.img");
    assert!(out.path().join("fallback.img").exists());
    let out = tempfile::tempdir().unwrap();
    let err = unpack_file(&pieces, out.path(), "../bad", &UNBOUNDED).unwrap_err();
    assert!(matches!(err, DiskError::UnsafeFileName { .. }));
}

#[test]
fn existing_files_and_symlinks_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (_, pieces) = small(dir.path(), &sink, "d.img");
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("d.img"), b"precious").unwrap();
    assert!(unpack_file(&pieces, out.path(), "x", &UNBOUNDED).is_err());
    assert_eq!(
        std::fs::read(out.path().join("d.img")).unwrap(),
        b"precious"
    );

    let out = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    std::os::unix::fs::symlink(&victim, out.path().join("d.img")).unwrap();
    assert!(unpack_file(&pieces, out.path(), "x", &UNBOUNDED).is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    assert!(
        out.path()
            .join("d.img")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// Packs `content` (written to a file first) as one legacy stream; returns its pieces.
fn packed(dir: &Path, sink: &DirSink, content: &[u8]) -> Vec<PathBuf> {
    let src = dir.join("bomb.img");
    std::fs::write(&src, content).unwrap();
    piece_paths(sink, &pack_file(&src, "bomb.img", None, sink).unwrap())
}

/// The bound that stopped `unpack_file`, and that nothing was left in `out`.
fn stopped_at(pieces: &[PathBuf], out: &Path, limits: &UnpackLimits) -> (u64, String) {
    let err = unpack_file(pieces, out, "x", limits).unwrap_err();
    assert_eq!(
        std::fs::read_dir(out).unwrap().count(),
        0,
        "a file was left"
    );
    match err {
        DiskError::LegacyFileTooLarge { limit, bound, name } => {
            assert_eq!(name, "bomb.img");
            (limit, bound)
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn a_file_larger_than_the_maximum_size_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let pieces = packed(dir.path(), &sink, &vec![1u8; 8 << 20]);
    let out = tempfile::tempdir().unwrap();
    let limits = UnpackLimits {
        max_size: 3 << 20,
        max_written: u64::MAX,
    };
    assert_eq!(
        stopped_at(&pieces, out.path(), &limits),
        (3 << 20, "the maximum disk size".to_owned())
    );
    let fits = UnpackLimits {
        max_size: 8 << 20,
        max_written: 8 << 20,
    };
    assert_eq!(
        unpack_file(&pieces, out.path(), "x", &fits).unwrap().2,
        8 << 20
    );
}

#[test]
fn written_bytes_are_bounded_but_holes_are_free() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let out = tempfile::tempdir().unwrap();
    let limits = UnpackLimits {
        max_size: u64::MAX,
        max_written: 1 << 20,
    };
    let data = packed(dir.path(), &sink, &vec![1u8; 4 << 20]);
    let (limit, bound) = stopped_at(&data, out.path(), &limits);
    assert_eq!(limit, 1 << 20);
    assert!(bound.contains("free space"), "{bound}");
    std::fs::remove_file(dir.path().join("bomb.img")).unwrap();
    let zeros = packed(dir.path(), &sink, &vec![0u8; 16 << 20]);
    assert_eq!(
        unpack_file(&zeros, out.path(), "x", &limits).unwrap().2,
        16 << 20
    );
}

#[test]
fn a_qcow2_file_is_bounded_by_its_virtual_size() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    // A 1 MiB qcow2 header followed by far more data than such an image can hold.
    let mut content = sardine_testbed::qcow2_bytes(dir.path(), &[]).unwrap();
    let bound = legacy::qcow2_file_bound(1 << 20);
    content.resize(bound as usize + (4 << 20), 1);
    let pieces = packed(dir.path(), &sink, &content);
    let out = tempfile::tempdir().unwrap();
    let (limit, why) = stopped_at(&pieces, out.path(), &UNBOUNDED);
    assert_eq!(limit, bound);
    assert!(why.contains("virtual size of 1048576 bytes"), "{why}");
}

#[test]
fn the_file_name_is_read_without_unpacking() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let pieces = packed(dir.path(), &sink, b"data");
    assert_eq!(legacy::file_name(&pieces, "x").unwrap(), "bomb.img");
}
