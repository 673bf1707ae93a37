//! Round trips and failure cases of the chunked zstd format.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{DirSink, sparse_file, test_disk};
use sardine_disk::chunked::{
    ChunkSource, FRAME_SIZE, PackOptions, PackedFile, pack_file, pack_sparse_file, unpack_file,
    unpack_sparse_file,
};
use sardine_disk::sparse::allocated_bytes;
use sardine_disk::{Digest, DiskError};
use sardine_testbed::noise;

const CHUNK: u64 = 4 << 20;

fn opts(threads: usize) -> PackOptions {
    PackOptions {
        chunk_size: CHUNK,
        level: 3,
        threads,
    }
}

fn pack(path: &Path, sink: &DirSink, threads: usize) -> PackedFile {
    let done = AtomicU64::new(0);
    let packed = pack_file(path, &opts(threads), sink, &|n| {
        done.fetch_add(n, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(
        done.load(Ordering::Relaxed),
        packed.size,
        "progress must add up to the size"
    );
    packed
}

fn sources(sink: &DirSink, packed: &PackedFile) -> Vec<ChunkSource> {
    packed
        .chunks
        .iter()
        .map(|c| ChunkSource {
            blob: sink.blob(&c.blob_digest),
            blob_digest: c.blob_digest.clone(),
            blob_size: c.blob_size,
            offset: c.offset,
            length: c.length,
            digest: c.digest.clone(),
        })
        .collect()
}

fn unpack(target: &Path, size: u64, chunks: &[ChunkSource]) -> Result<(), DiskError> {
    unpack_file(target, size, chunks, 2, &|_| {})
}

#[test]
fn sparse_file_round_trips_byte_identical_and_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.img");
    let size = test_disk(&src);
    let sink = DirSink::new();
    let packed = pack(&src, &sink, 2);
    assert_eq!(packed.size, size);
    assert_eq!(packed.chunks.len() as u64, size.div_ceil(CHUNK));
    assert_eq!(packed.chunks.last().unwrap().length, size % CHUNK);
    assert_eq!(sink.temp_count(), 0, "temp files must not be left behind");

    let target = dir.path().join("out.img");
    let written = AtomicU64::new(0);
    unpack_file(&target, size, &sources(&sink, &packed), 2, &|n| {
        written.fetch_add(n, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(written.load(Ordering::Relaxed), size);
    assert!(
        std::fs::read(&src).unwrap() == std::fs::read(&target).unwrap(),
        "content differs"
    );
    let (source_alloc, target_alloc) = (
        allocated_bytes(&src).unwrap(),
        allocated_bytes(&target).unwrap(),
    );
    assert!(
        target_alloc <= source_alloc + (64 << 10),
        "target {target_alloc} vs source {source_alloc}"
    );
    assert!(target_alloc < size / 4, "holes were filled: {target_alloc}");
}

#[test]
fn packing_is_deterministic_and_an_unchanged_repack_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.img");
    test_disk(&src);
    let sink = DirSink::new();
    let first = pack(&src, &sink, 2);
    let commits = sink.commits.load(Ordering::SeqCst);
    let second = pack(&src, &sink, 1);
    assert_eq!(first, second);
    assert_eq!(
        sink.commits.load(Ordering::SeqCst),
        commits,
        "the repack stored blobs again"
    );
    let other_store = DirSink::new();
    assert_eq!(pack(&src, &other_store, 3), first);
}

#[test]
fn zero_chunks_share_one_blob() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty.img");
    sparse_file(&src, 5 * CHUNK, &[(2 * CHUNK, vec![0u8; CHUNK as usize])]);
    let sink = DirSink::new();
    let packed = pack(&src, &sink, 2);
    assert_eq!(packed.chunks.len(), 5);
    assert!(
        packed
            .chunks
            .iter()
            .all(|c| c.blob_digest == packed.chunks[0].blob_digest)
    );
    assert_eq!(sink.blob_count(), 1);
    assert_eq!(sink.commits.load(Ordering::SeqCst), 1);
    let target = dir.path().join("out.img");
    unpack(&target, packed.size, &sources(&sink, &packed)).unwrap();
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 5 * CHUNK);
    assert!(allocated_bytes(&target).unwrap() < 64 << 10);
}

#[test]
fn a_changed_region_changes_only_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.img");
    test_disk(&src);
    let sink = DirSink::new();
    let before = pack(&src, &sink, 2);
    let file = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &noise(9, 1 << 20), 2 * CHUNK + 100).unwrap();
    drop(file);
    let after = pack(&src, &sink, 2);
    let changed: Vec<u64> = before
        .chunks
        .iter()
        .zip(&after.chunks)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.offset)
        .collect();
    assert_eq!(changed, vec![2 * CHUNK]);
}

#[test]
fn empty_and_tiny_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [("empty", Vec::new()), ("tiny", b"x".to_vec())] {
        let src = dir.path().join(name);
        std::fs::write(&src, &content).unwrap();
        let sink = DirSink::new();
        let packed = pack(&src, &sink, 4);
        assert_eq!(packed.chunks.len(), content.len());
        let target = dir.path().join(format!("{name}.out"));
        unpack(&target, packed.size, &sources(&sink, &packed)).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), content);
    }
}

/// Packs a small two-chunk file and returns its sources and size.
fn small_packed(dir: &Path, sink: &DirSink) -> (Vec<ChunkSource>, u64) {
    let src = dir.join("small.img");
    sparse_file(
        &src,
        CHUNK + 5000,
        &[(0, noise(4, 100_000)), (CHUNK, noise(5, 5000))],
    );
    let packed = pack(&src, sink, 2);
    (sources(sink, &packed), packed.size)
}

/// Asserts that unpacking fails with an error matching `check` and leaves no target.
fn assert_fails(chunks: &[ChunkSource], size: u64, check: impl Fn(&DiskError) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.img");
    let err = unpack(&target, size, chunks).unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert!(!target.exists(), "the target was left behind after {err}");
}

/// Writes `bytes` as a new blob file and points the first chunk at it.
fn replace_first_blob(
    dir: &Path,
    chunks: &mut [ChunkSource],
    bytes: &[u8],
    fix_digest: bool,
) -> PathBuf {
    let path = dir.join(format!("blob-{}", bytes.len()));
    std::fs::write(&path, bytes).unwrap();
    chunks[0].blob = path.clone();
    chunks[0].blob_size = bytes.len() as u64;
    if fix_digest {
        chunks[0].blob_digest = sardine_disk::Digest::of(bytes);
    }
    path
}

#[test]
fn a_corrupted_blob_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, size) = small_packed(dir.path(), &sink);
    let mut bytes = std::fs::read(&chunks[0].blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    replace_first_blob(dir.path(), &mut chunks, &bytes, false);
    assert_fails(&chunks, size, |e| {
        matches!(e, DiskError::BlobDigestMismatch { .. })
    });
}

#[test]
fn a_blob_of_the_wrong_size_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, size) = small_packed(dir.path(), &sink);
    chunks[1].blob_size += 1;
    assert_fails(&chunks, size, |e| {
        matches!(e, DiskError::BlobSizeMismatch { .. })
    });
}

#[test]
fn a_wrong_uncompressed_digest_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, size) = small_packed(dir.path(), &sink);
    chunks[1].digest = chunks[0].digest.clone();
    assert_fails(&chunks, size, |e| {
        matches!(e, DiskError::ChunkDigestMismatch { .. })
    });
}

#[test]
fn truncated_zstd_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, size) = small_packed(dir.path(), &sink);
    let bytes = std::fs::read(&chunks[0].blob).unwrap();
    replace_first_blob(dir.path(), &mut chunks, &bytes[..bytes.len() - 100], true);
    assert_fails(&chunks, size, |e| {
        matches!(
            e,
            DiskError::Decompress { .. } | DiskError::ChunkLength { .. }
        )
    });
}

#[test]
fn garbage_instead_of_zstd_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, size) = small_packed(dir.path(), &sink);
    replace_first_blob(dir.path(), &mut chunks, &noise(7, 1000), true);
    assert_fails(&chunks, size, |e| matches!(e, DiskError::Decompress { .. }));
}

#[test]
fn oversized_chunk_data_is_rejected_without_writing_past_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, _) = small_packed(dir.path(), &sink);
    // The first blob holds CHUNK bytes; claim it holds fewer and let the second chunk follow directly.
    let short = CHUNK - 4096;
    chunks[0].length = short;
    chunks[1].offset = short;
    let size = short + chunks[1].length;
    assert_fails(
        &chunks,
        size,
        |e| matches!(e, DiskError::ChunkLength { expected, .. } if *expected == short),
    );
}

#[test]
fn undersized_chunk_data_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, _) = small_packed(dir.path(), &sink);
    chunks[1].length += 10;
    let size = chunks[1].offset + chunks[1].length;
    assert_fails(&chunks, size, |e| {
        matches!(e, DiskError::ChunkLength { .. })
    });
}

#[test]
fn bad_tilings_are_rejected_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (chunks, size) = small_packed(dir.path(), &sink);
    let is_tiling = |e: &DiskError| matches!(e, DiskError::ChunkTiling { .. });
    assert_fails(&chunks[1..], size, is_tiling);
    assert_fails(&chunks[..1], size, is_tiling);
    assert_fails(&chunks, size + 1, is_tiling);
    assert_fails(&chunks, size - 1, is_tiling);
    let mut overlapping = chunks.clone();
    overlapping[1].offset -= 1;
    assert_fails(&overlapping, size - 1, is_tiling);
    let mut doubled = chunks.clone();
    doubled.push(chunks[1].clone());
    assert_fails(&doubled, size, is_tiling);
}

#[test]
fn an_existing_target_is_neither_overwritten_nor_removed() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (chunks, size) = small_packed(dir.path(), &sink);
    let target = dir.path().join("precious.img");
    std::fs::write(&target, b"keep me").unwrap();
    let err = unpack(&target, size, &chunks).unwrap_err();
    assert!(
        matches!(
            err,
            DiskError::Io {
                action: "create",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
}

#[test]
fn a_missing_blob_is_reported_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSink::new();
    let (mut chunks, size) = small_packed(dir.path(), &sink);
    chunks[1].blob = dir.path().join("nonexistent");
    assert_fails(&chunks, size, |e| matches!(e, DiskError::Io { .. }));
}

#[test]
fn invalid_options_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x");
    std::fs::write(&src, b"data").unwrap();
    let sink = DirSink::new();
    let bad = PackOptions {
        chunk_size: 0,
        ..PackOptions::default()
    };
    assert!(matches!(
        pack_file(&src, &bad, &sink, &|_| {}),
        Err(DiskError::InvalidOptions { .. })
    ));
    assert!(matches!(
        pack_file(&dir.path().join("missing"), &opts(1), &sink, &|_| {}),
        Err(DiskError::Io { .. })
    ));
}

#[test]
fn offered_blobs_are_reused_only_when_they_hold_exactly_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.img");
    // Six chunks of data that differ from each other (zero chunks all look alike).
    let size = 6 * CHUNK;
    let regions: Vec<(u64, Vec<u8>)> = (0..6)
        .map(|i| (i * CHUNK, noise(10 + i, 100_000)))
        .collect();
    sparse_file(&src, size, &regions);
    let old_store = DirSink::new();
    let old = pack(&src, &old_store, 2);
    // The guest changed a little: chunk 1 only.
    let file = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"changed", CHUNK + 100).unwrap();
    drop(file);

    let mut sink = DirSink::new();
    let offer = |chunk: &sardine_disk::chunked::PackedChunk| sardine_disk::KnownBlob {
        digest: chunk.blob_digest.clone(),
        size: chunk.blob_size,
        path: old_store.blob(&chunk.blob_digest),
    };
    for chunk in &old.chunks {
        sink.offers
            .insert((chunk.digest.clone(), chunk.length), offer(chunk));
    }
    // A lie: chunk 2's digest offered with chunk 0's blob (a valid blob, other bytes).
    sink.offers
        .insert((old.chunks[2].digest.clone(), CHUNK), offer(&old.chunks[0]));
    // A damaged blob: chunk 3's blob file no longer has its digest.
    let damaged = dir.path().join("damaged");
    let mut bytes = std::fs::read(old_store.blob(&old.chunks[3].blob_digest)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&damaged, bytes).unwrap();
    sink.offers
        .get_mut(&(old.chunks[3].digest.clone(), CHUNK))
        .unwrap()
        .path = damaged;

    let new = pack(&src, &sink, 2);
    let adopted = sink.adopted.lock().unwrap().clone();
    assert_ne!(new.chunks[1].digest, old.chunks[1].digest);
    for (i, chunk) in new.chunks.iter().enumerate() {
        let reused = adopted.contains(&chunk.blob_digest);
        assert_eq!(
            reused,
            ![1, 2, 3].contains(&i),
            "chunk {i}: adopted {adopted:?}"
        );
    }
    let target = dir.path().join("out.img");
    unpack(&target, size, &sources(&sink, &new)).unwrap();
    assert!(
        std::fs::read(&src).unwrap() == std::fs::read(&target).unwrap(),
        "content differs"
    );
}

/// A sparse file with data at its start, zeros written in its middle and noise at its end.
fn mostly_holes(path: &Path) -> u64 {
    let size = 1 << 40;
    sparse_file(
        path,
        size,
        &[
            (0, noise(4, 100_000)),
            (300 << 30, vec![0u8; 1 << 20]),
            (size - 5000, noise(5, 5000)),
        ],
    );
    size
}

#[test]
fn sparse_packing_lists_only_chunks_with_data_and_unpacks_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.img");
    let size = mostly_holes(&src);
    let sink = DirSink::new();
    let done = AtomicU64::new(0);
    let packed = pack_sparse_file(&src, &opts(2), &sink, &|n| {
        done.fetch_add(n, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(done.load(Ordering::Relaxed), size, "holes count as done");
    let offsets: Vec<u64> = packed.chunks.iter().map(|c| c.offset).collect();
    assert_eq!(
        offsets,
        vec![0, size - CHUNK],
        "the zeros in the middle are left out"
    );
    assert_eq!(sink.blob_count(), 2);

    let target = dir.path().join("out.img");
    let written = AtomicU64::new(0);
    unpack_sparse_file(&target, size, &sources(&sink, &packed), 2, &|n| {
        written.fetch_add(n, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(written.load(Ordering::Relaxed), 2 * CHUNK);
    assert_eq!(std::fs::metadata(&target).unwrap().len(), size);
    assert!(allocated_bytes(&target).unwrap() < 1 << 20);
    assert_eq!(read_range(&target, 0, 100_000), noise(4, 100_000));
    assert_eq!(read_range(&target, size - 5000, 5000), noise(5, 5000));
    assert_eq!(read_range(&target, 300 << 30, 1 << 20), vec![0u8; 1 << 20]);
    assert!(
        unpack_file(
            &dir.path().join("exact.img"),
            size,
            &sources(&sink, &packed),
            2,
            &|_| {}
        )
        .is_err(),
        "exact tiling still refuses gaps"
    );
}

#[test]
fn chunks_longer_than_a_frame_are_streamed_in_frames_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.img");
    let chunk = 2 * FRAME_SIZE;
    let size = 3 * chunk + 777;
    sparse_file(
        &src,
        size,
        &[
            (FRAME_SIZE - 10, noise(6, 3 << 20)),
            (2 * chunk + FRAME_SIZE + 5, noise(7, 1 << 20)),
            (size - 777, noise(8, 777)),
        ],
    );
    let sink = DirSink::new();
    let opts = PackOptions {
        chunk_size: chunk,
        ..opts(2)
    };
    let packed = pack_sparse_file(&src, &opts, &sink, &|_| {}).unwrap();
    let lengths: Vec<(u64, u64)> = packed.chunks.iter().map(|c| (c.offset, c.length)).collect();
    assert_eq!(
        lengths,
        vec![(0, chunk), (2 * chunk, chunk), (3 * chunk, 777)]
    );
    let full = pack_file(&src, &opts, &sink, &|_| {}).unwrap();
    assert_eq!(
        full.chunks.len(),
        4,
        "the all-zero chunk is listed by pack_file"
    );
    assert_eq!(
        full.chunks[0], packed.chunks[0],
        "the same bytes give the same blob"
    );
    for chunk in &packed.chunks {
        assert_eq!(
            chunk.digest,
            Digest::of(&read_range(&src, chunk.offset, chunk.length))
        );
    }
    let target = dir.path().join("out.img");
    unpack_sparse_file(&target, size, &sources(&sink, &packed), 2, &|_| {}).unwrap();
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&target).unwrap());
    let exact = dir.path().join("exact.img");
    unpack_file(&exact, size, &sources(&sink, &full), 2, &|_| {}).unwrap();
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&exact).unwrap());
}

/// `length` bytes of `path` from `offset` on.
fn read_range(path: &Path, offset: u64, length: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; length as usize];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}
