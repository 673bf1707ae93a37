//! qcow2 images for tests of hostile disks: made by `qemu-img`, then edited where `qemu-img`
//! refuses to make what a hostile image carries.

use std::path::Path;

/// Header extension type of the backing file format name.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Where the header extensions of a version 3 image made by `qemu-img` start.
const V3_EXTENSIONS: usize = 112;

/// A 1 MiB qcow2 image made in `dir` by `qemu-img create -f qcow2 OPTIONS`, as bytes (the file
/// is removed again).
pub fn qcow2_bytes(dir: &Path, options: &[&str]) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(format!("made-{}.qcow2", std::process::id()));
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    args.extend_from_slice(options);
    let path_arg = path.to_string_lossy().into_owned();
    args.extend_from_slice(&[&path_arg, "1M"]);
    crate::qemu_img(dir, &args)?;
    let bytes = fs_err::read(&path)?;
    fs_err::remove_file(&path)?;
    Ok(bytes)
}

/// Makes the backing format header extension of a version 3 image unknown (its type becomes
/// another), as in an image whose backing format was never recorded: qemu-img 7 no longer
/// makes such images, older ones did.
pub fn strip_backing_format(image: &mut [u8]) {
    let u32_at = |bytes: &[u8], pos: usize| {
        bytes
            .get(pos..pos + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut pos = V3_EXTENSIONS;
    loop {
        let kind = u32_at(image, pos);
        if kind == 0 {
            return;
        }
        if kind == EXT_BACKING_FORMAT {
            image[pos..pos + 4].copy_from_slice(&0x5eed_0000u32.to_be_bytes());
        }
        pos += 8 + (u32_at(image, pos + 4) as usize).next_multiple_of(8);
    }
}
