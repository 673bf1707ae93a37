//! Commands run inside an image's file system: `chroot`, in a mount and PID namespace of their
//! own (`unshare`), with `/dev`, `/proc`, `/sys`, a fresh `/run` and `/tmp`, and the host's
//! `/etc/resolv.conf` (so that apt reaches the mirror). The namespace takes every mount and
//! every process started inside with it when the command ends, even when sarde is killed: no
//! mount is left behind and no daemon a package's scripts started keeps running. Services are
//! not started by package installation (`policy-rc.d`).
//!
//! Every path is resolved inside the chroot, so an image's own symbolic links (`/root/.ssh`
//! pointing to the host's) never lead a write outside of it.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use crate::error::BuildError;
use crate::tool::StepContext;

/// The script that sets up the namespace: `$1` is the root; the command is in `$SARDE_SCRIPT`,
/// its arguments follow the root.
const ENTER: &str = r#"set -e
root=$1; shift
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
made_resolv=
if [ ! -e "$root/etc/resolv.conf" ] && [ ! -L "$root/etc/resolv.conf" ]; then
  : > "$root/etc/resolv.conf"; made_resolv=1
fi
if [ -f "$root/etc/resolv.conf" ] && [ ! -L "$root/etc/resolv.conf" ] && [ -f /etc/resolv.conf ]; then
  mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
fi
made_policy=
if [ -d "$root/usr/sbin" ] && [ ! -e "$root/usr/sbin/policy-rc.d" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"; made_policy=1
fi
status=0
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive HOME=/root \
  chroot "$root" /bin/sh -c "$SARDE_SCRIPT" sarde "$@" || status=$?
[ -z "$made_policy" ] || rm -f "$root/usr/sbin/policy-rc.d"
if [ -n "$made_resolv" ]; then umount "$root/etc/resolv.conf" 2>/dev/null || true; rm -f "$root/etc/resolv.conf"; fi
exit $status
"#;

/// An image's file system, mounted or unpacked at `dir`.
#[derive(Debug, Clone, Copy)]
pub struct Chroot<'a> {
    /// Its root directory.
    pub dir: &'a Path,
    /// Where its steps run.
    pub context: StepContext<'a>,
}

impl Chroot<'_> {
    /// Runs `script` (`/bin/sh -c`, with `args` as `$1`…) in the image as the step `step`,
    /// its stdin from `stdin`.
    pub fn sh(
        &self,
        step: &str,
        script: &str,
        args: &[&str],
        stdin: Option<File>,
    ) -> Result<(), BuildError> {
        let mut command = self.command(script, args);
        self.context.run(step, &mut command, stdin)
    }

    /// Runs `script` in the image and returns what it wrote on stdout.
    pub fn output(&self, step: &str, script: &str, args: &[&str]) -> Result<Vec<u8>, BuildError> {
        let out = tempfile::tempfile().map_err(BuildError::io(
            "creating a temporary file in",
            std::env::temp_dir(),
        ))?;
        let mut command = self.command(script, args);
        let reader = out
            .try_clone()
            .map_err(BuildError::io("duplicating", std::env::temp_dir()))?;
        command.stdout(out);
        // `run` sets stdout for its log; ours must win, so run without it.
        let status = command
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .status()
            .map_err(|e| {
                self.context
                    .failure(step, format!("cannot start `unshare`: {e}"))
            })?;
        if !status.success() {
            return Err(self.context.failure(step, format!("`{script}` {status}")));
        }
        read_all(reader)
    }

    fn command(&self, script: &str, args: &[&str]) -> Command {
        let mut command = Command::new("unshare");
        command
            .args([
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--fork",
                "--kill-child",
            ])
            .args(["--", "/bin/sh", "-c", ENTER, "sarde-enter"])
            .arg(self.dir)
            .args(args)
            .env("SARDE_SCRIPT", script);
        command
    }
}

fn read_all(mut file: File) -> Result<Vec<u8>, BuildError> {
    use std::io::{Read as _, Seek as _};
    let mut bytes = Vec::new();
    file.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(BuildError::io(
            "reading the output of a command in",
            std::env::temp_dir(),
        ))?;
    Ok(bytes)
}
