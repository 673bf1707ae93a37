//! The disks of built images: a root image's file system made from a directory tree
//! (`mkfs.ext4 -d`, the whole disk, no partition table) and converted to qcow2; a derived
//! image's qcow2 overlay on its parent's disk, changed offline by exporting it as a raw file
//! through FUSE (`qemu-storage-daemon`) and mounting that through a loop device. No guest
//! boots and neither nbd nor libguestfs is needed (docs/build.md has the measurements).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::error::BuildError;
use crate::tool::StepContext;

/// Makes `qcow2` from the directory `tree`: an ext4 file system of `size` bytes with the given
/// UUID (also its directory hash seed) and, when `epoch` is set, that time on every inode, so
/// that the same tree gives the same disk.
pub fn make_root_disk(
    context: StepContext<'_>,
    tree: &Path,
    size: u64,
    uuid: &str,
    epoch: Option<u64>,
    qcow2: &Path,
) -> Result<(), BuildError> {
    let raw = qcow2.with_extension("raw");
    let file = fs_err::File::create(&raw).map_err(|e| BuildError::Io {
        what: "creating",
        path: raw.clone(),
        source: e,
    })?;
    file.set_len(size)
        .map_err(BuildError::io("sizing", raw.clone()))?;
    drop(file);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "root", "-U", uuid])
        .arg("-E")
        .arg(format!("hash_seed={uuid},root_owner=0:0"))
        .arg("-d")
        .arg(tree)
        .arg(&raw);
    if let Some(epoch) = epoch {
        mkfs.env("E2FSPROGS_FAKE_TIME", epoch.to_string());
    }
    context.run("file system (mkfs.ext4 -d)", &mut mkfs, None)?;
    if let Some(epoch) = epoch {
        clamp_change_times(context, tree, &raw, epoch)?;
    }
    let mut convert = Command::new("qemu-img");
    convert
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(qcow2);
    context.run("disk (qemu-img convert)", &mut convert, None)?;
    fs_err::remove_file(&raw).map_err(|e| BuildError::Io {
        what: "removing",
        path: raw,
        source: e,
    })
}

/// Sets the change and access times (and their nanoseconds) of every inode that mkfs.ext4
/// copied from `tree` to `epoch`: `-d` takes them from the tree, where nobody can set a change
/// time (`debugfs set_inode_field`, by path; a path with a `"` or a line break keeps its own).
/// debugfs runs with the fake time too, for the superblock's last write time.
fn clamp_change_times(
    context: StepContext<'_>,
    tree: &Path,
    raw: &Path,
    epoch: u64,
) -> Result<(), BuildError> {
    let mut paths = vec![String::from("/")];
    collect_paths(tree, "", &mut paths).map_err(BuildError::io("listing", tree))?;
    let script: String = paths
        .iter()
        .filter(|p| !p.contains(['"', '\n']))
        .flat_map(|p| {
            let stamp = format!("@{epoch}");
            [
                ("ctime", stamp.clone()),
                ("atime", stamp),
                ("ctime_extra", "0".into()),
                ("atime_extra", "0".into()),
            ]
            .map(|(field, value)| format!("set_inode_field \"{p}\" {field} {value}\n"))
        })
        .collect();
    let file = raw.with_extension("debugfs");
    fs_err::write(&file, script).map_err(|e| BuildError::Io {
        what: "writing",
        path: file.clone(),
        source: e,
    })?;
    let mut debugfs = Command::new("debugfs");
    debugfs
        .arg("-w")
        .arg("-f")
        .arg(&file)
        .arg(raw)
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string());
    context.run("clamping change times (debugfs)", &mut debugfs, None)?;
    let _ = fs_err::remove_file(&file);
    Ok(())
}

/// Every path below `dir` (as `/a/b`, `prefix` before it), not following symbolic links nor
/// leaving the file system's directories (the tree has no mounts).
fn collect_paths(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let is_dir = entry.file_type()?.is_dir();
        out.push(path.clone());
        if is_dir {
            collect_paths(&entry.path(), &path, out)?;
        }
    }
    Ok(())
}

/// Makes the overlay `overlay` on `backing` (a plain name in the same directory, qcow2), of
/// `size` bytes if given (else the backing file's size).
pub fn make_overlay(
    context: StepContext<'_>,
    overlay: &Path,
    backing: &str,
    size: Option<u64>,
) -> Result<(), BuildError> {
    let mut create = Command::new("qemu-img");
    create
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing])
        .arg(overlay);
    if let Some(size) = size {
        create.arg(size.to_string());
    }
    context.run("overlay (qemu-img create)", &mut create, None)
}

/// An overlay's file system, mounted at `dir` for offline changes. [`Mounted::finish`]
/// unmounts it and stops the export, flushing everything into the overlay.
#[derive(Debug)]
pub struct Mounted {
    dir: PathBuf,
    raw: PathBuf,
    daemon: Option<Child>,
    mounted: bool,
}

impl Mounted {
    /// Mounts the file system of the qcow2 `overlay` (whose whole disk is an ext4 file system)
    /// at `work/root`, growing the file system to the disk when `grow`.
    pub fn mount(
        context: StepContext<'_>,
        overlay: &Path,
        work: &Path,
        grow: bool,
    ) -> Result<Mounted, BuildError> {
        let raw = work.join("export.raw");
        let dir = work.join("root");
        for (path, what) in [(&raw, "creating"), (&dir, "creating")] {
            let made = if path == &raw {
                fs_err::File::create(path).map(drop)
            } else {
                fs_err::create_dir_all(path)
            };
            made.map_err(|e| BuildError::Io {
                what,
                path: path.clone(),
                source: e,
            })?;
        }
        let mut mounted = Mounted {
            dir,
            raw,
            daemon: None,
            mounted: false,
        };
        mounted.export(context, overlay)?;
        if grow {
            let mut resize = Command::new("resize2fs");
            resize.arg("-f").arg(&mounted.raw);
            context.run("growing the file system (resize2fs)", &mut resize, None)?;
        }
        let mut mount = Command::new("mount");
        mount
            .args(["-t", "ext4", "-o", "loop"])
            .arg(&mounted.raw)
            .arg(&mounted.dir);
        context.run("mounting the file system", &mut mount, None)?;
        mounted.mounted = true;
        Ok(mounted)
    }

    /// Where the file system is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts qemu-storage-daemon exporting `overlay` as the raw file `self.raw` and waits until
    /// the export is there.
    fn export(&mut self, context: StepContext<'_>, overlay: &Path) -> Result<(), BuildError> {
        let file = format!(
            "driver=file,node-name=file,filename={}",
            overlay.display().to_string().replace(',', ",,")
        );
        let export = format!(
            "type=fuse,id=export,node-name=disk,mountpoint={},writable=on",
            self.raw.display().to_string().replace(',', ",,")
        );
        let mut command = Command::new("qemu-storage-daemon");
        command
            .args(["--blockdev", &file])
            .args(["--blockdev", "driver=qcow2,node-name=disk,file=file"])
            .args(["--export", &export])
            .stdin(std::process::Stdio::null());
        if !context.verbose {
            command.stdout(std::process::Stdio::null());
        }
        let step = "exporting the overlay (qemu-storage-daemon)";
        let child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BuildError::MissingProgram {
                    program: "qemu-storage-daemon".into(),
                    package: "qemu-system-common".into(),
                    image: context.image.into(),
                    purpose: step.into(),
                }
            } else {
                context.failure(step, e.to_string())
            }
        })?;
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mount_point(&self.raw) {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|d| d.try_wait().ok().flatten())
            {
                self.daemon = None;
                return Err(context.failure(step, format!("it {status}")));
            }
            if Instant::now() > deadline {
                return Err(context.failure(step, "the export did not appear within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Unmounts the file system and stops the export: the overlay then holds every change.
    pub fn finish(mut self, context: StepContext<'_>) -> Result<(), BuildError> {
        self.release(Some(context))
    }

    fn release(&mut self, context: Option<StepContext<'_>>) -> Result<(), BuildError> {
        if std::mem::take(&mut self.mounted) {
            let mut umount = Command::new("umount");
            umount.arg(&self.dir);
            match context {
                Some(context) => context.run("unmounting the file system", &mut umount, None)?,
                None => {
                    let _ = umount.arg("--lazy").status();
                }
            }
        }
        if let Some(mut daemon) = self.daemon.take() {
            // SIGTERM: qemu-storage-daemon flushes and closes its block devices, then exits.
            terminate(&daemon);
            let status = daemon.wait();
            if let (Some(context), Ok(status)) = (context, status)
                && !status.success()
                && std::os::unix::process::ExitStatusExt::signal(&status).is_none()
            {
                return Err(context.failure("stopping the export", format!("it {status}")));
            }
        }
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.release(None);
    }
}

/// Sends SIGTERM to a child.
fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's PID, which we have not waited for yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = fs_err::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.display().to_string();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| unescape_mountinfo(point) == wanted)
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape_mountinfo(field: &str) -> String {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(value) = field
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
