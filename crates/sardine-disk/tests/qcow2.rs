//! qcow2 headers and backing chains of real images made with qemu-img.

use std::path::{Path, PathBuf};
use std::process::Command;

use sardine_disk::DiskError;
use sardine_disk::qcow2::{Format, backing_chain, create_overlay, read_header};

fn qemu_img(args: &[&str], dir: &Path) {
    let output = Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// base.qcow2 <- mid.qcow2 <- top.qcow2, all with relative backing names, in `dir`.
fn three_layers(dir: &Path) -> PathBuf {
    qemu_img(&["create", "-q", "-f", "qcow2", "base.qcow2", "256M"], dir);
    create_overlay("base.qcow2", Format::Qcow2, &dir.join("mid.qcow2")).unwrap();
    create_overlay("mid.qcow2", Format::Qcow2, &dir.join("top.qcow2")).unwrap();
    dir.join("top.qcow2")
}

#[test]
fn headers_of_real_images() {
    let dir = tempfile::tempdir().unwrap();
    let top = three_layers(dir.path());
    let header = read_header(&top).unwrap().unwrap();
    assert_eq!(header.version, 3);
    assert_eq!(header.virtual_size, 256 << 20);
    assert_eq!(header.backing_file.as_deref(), Some("mid.qcow2"));
    assert_eq!(header.backing_format.as_deref(), Some("qcow2"));
    let base = read_header(&dir.path().join("base.qcow2"))
        .unwrap()
        .unwrap();
    assert_eq!((base.backing_file, base.backing_format), (None, None));

    qemu_img(
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "old.qcow2",
            "1M",
        ],
        dir.path(),
    );
    assert_eq!(
        read_header(&dir.path().join("old.qcow2"))
            .unwrap()
            .unwrap()
            .version,
        2
    );
    qemu_img(&["create", "-q", "-f", "raw", "raw.img", "1M"], dir.path());
    assert_eq!(read_header(&dir.path().join("raw.img")).unwrap(), None);
}

#[test]
fn backing_chain_follows_relative_names() {
    let dir = tempfile::tempdir().unwrap();
    let top = three_layers(dir.path());
    let chain = backing_chain(&top).unwrap();
    let paths: Vec<_> = chain.iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        paths,
        ["top.qcow2", "mid.qcow2", "base.qcow2"].map(|n| dir.path().join(n))
    );
    let stored: Vec<_> = chain.iter().map(|e| e.stored_backing.as_deref()).collect();
    assert_eq!(stored, [Some("mid.qcow2"), Some("base.qcow2"), None]);
}

#[test]
fn backing_chain_across_directories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    qemu_img(
        &["create", "-q", "-f", "qcow2", "base.qcow2", "1M"],
        dir.path(),
    );
    create_overlay(
        "../base.qcow2",
        Format::Qcow2,
        &dir.path().join("sub/top.qcow2"),
    )
    .unwrap();
    let chain = backing_chain(&dir.path().join("sub/top.qcow2")).unwrap();
    assert_eq!(chain[1].path, dir.path().join("sub/../base.qcow2"));
    assert_eq!(chain[1].stored_backing, None);
}

#[test]
fn a_raw_file_is_a_chain_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.img");
    std::fs::write(&raw, vec![0u8; 4096]).unwrap();
    let chain = backing_chain(&raw).unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].stored_backing, None);
}

#[test]
fn a_missing_backing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let top = three_layers(dir.path());
    std::fs::remove_file(dir.path().join("base.qcow2")).unwrap();
    match backing_chain(&top).unwrap_err() {
        DiskError::BackingFileMissing { image, backing, .. } => {
            assert_eq!(image, dir.path().join("mid.qcow2"));
            assert_eq!(backing, "base.qcow2");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn a_backing_loop_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let top = three_layers(dir.path());
    qemu_img(
        &[
            "rebase",
            "-u",
            "-F",
            "qcow2",
            "-b",
            "top.qcow2",
            "base.qcow2",
        ],
        dir.path(),
    );
    assert!(matches!(
        backing_chain(&top),
        Err(DiskError::BackingChainLoop { .. })
    ));
}

#[test]
fn create_overlay_reports_qemu_img_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        create_overlay("missing.qcow2", Format::Qcow2, &dir.path().join("o.qcow2")).unwrap_err();
    match &err {
        DiskError::QemuImgFailed { stderr, .. } => {
            assert!(stderr.contains("missing.qcow2"), "{stderr}")
        }
        other => panic!("unexpected error {other:?}"),
    }
}

/// `qemu-img create -f qcow2 <options> top.qcow2` in `dir` (`-u`: the backing file is not
/// opened), returning the path.
fn overlay_of(dir: &Path, options: &[&str]) -> PathBuf {
    let mut args = vec!["create", "-q", "-f", "qcow2", "-u"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["top.qcow2", "1M"]);
    qemu_img(&args, dir);
    dir.join("top.qcow2")
}

/// The reason of an [`DiskError::UnsafeImage`] from `backing_chain(path)`.
fn refusal(path: &Path) -> String {
    match backing_chain(path).unwrap_err() {
        DiskError::UnsafeImage { reason, .. } => reason,
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn chains_refuse_protocol_backing_names_even_when_such_a_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["nbd:127.0.0.1:10809", "json:{}", "file:base.qcow2"] {
        std::fs::write(dir.path().join(name), b"raw bytes").unwrap();
        let top = overlay_of(dir.path(), &["-F", "raw", "-b", name]);
        assert!(refusal(&top).contains("protocol"), "{name}");
    }
}

#[test]
fn chains_refuse_other_formats_and_mismatched_declarations() {
    let dir = tempfile::tempdir().unwrap();
    qemu_img(&["create", "-q", "-f", "raw", "raw.img", "1M"], dir.path());
    qemu_img(
        &["create", "-q", "-f", "qcow2", "base.qcow2", "1M"],
        dir.path(),
    );
    for (options, expected) in [
        (["-F", "vmdk", "-b", "raw.img"], "vmdk"),
        (["-F", "qed", "-b", "raw.img"], "qed"),
        (["-F", "qcow2", "-b", "raw.img"], "but that file is raw"),
        (["-F", "raw", "-b", "base.qcow2"], "but that file is qcow2"),
    ] {
        let top = overlay_of(dir.path(), &options);
        let reason = refusal(&top);
        assert!(reason.contains(expected), "{options:?}: {reason}");
        std::fs::remove_file(top).unwrap();
    }
}

#[test]
fn an_undeclared_backing_format_is_accepted_for_qcow2_files_only() {
    let dir = tempfile::tempdir().unwrap();
    qemu_img(&["create", "-q", "-f", "raw", "raw.img", "1M"], dir.path());
    qemu_img(
        &["create", "-q", "-f", "qcow2", "base.qcow2", "1M"],
        dir.path(),
    );
    // qemu-img insists on -F nowadays: an old image without the extension is made by rebase.
    let top = overlay_of(dir.path(), &["-F", "qcow2", "-b", "base.qcow2"]);
    strip_backing_format(&top);
    assert_eq!(read_header(&top).unwrap().unwrap().backing_format, None);
    let chain = backing_chain(&top).unwrap();
    assert_eq!(chain[1].format, Format::Qcow2);
    qemu_img(
        &["rebase", "-u", "-F", "raw", "-b", "raw.img", "top.qcow2"],
        dir.path(),
    );
    strip_backing_format(&top);
    assert!(refusal(&top).contains("declares no format"));
}

/// Makes the image at `path` one without a recorded backing format.
fn strip_backing_format(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    sardine_testbed::strip_backing_format(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn chains_refuse_devices_and_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let top = overlay_of(dir.path(), &["-F", "raw", "-b", "/dev/null"]);
    assert!(refusal(&top).contains("not a regular file"));
    std::fs::remove_file(&top).unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let top = overlay_of(dir.path(), &["-F", "raw", "-b", "fifo"]);
    assert!(refusal(&top).contains("not a regular file"));
}

#[test]
fn create_overlay_refuses_protocol_backing_names() {
    let dir = tempfile::tempdir().unwrap();
    let err = create_overlay(
        "nbd:127.0.0.1:10809",
        Format::Raw,
        &dir.path().join("o.qcow2"),
    )
    .unwrap_err();
    assert!(matches!(err, DiskError::UnsafeImage { .. }), "{err}");
    assert!(!dir.path().join("o.qcow2").exists());
}
