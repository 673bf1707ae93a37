//! What each action does to an image's file system, as a shell script run in its chroot
//! ([`crate::chroot`]), and the setup every built Linux image gets: the parts that make it boot
//! and reachable (fstab, DHCP on every Ethernet interface with systemd-networkd, an empty
//! machine-id and fresh SSH host keys for each VM made from it), its host name and its users.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use crate::chroot::Chroot;
use crate::error::BuildError;
use crate::spec::{Action, UserSpec};

/// Makes a system bootable and reachable: `$1` is its host name.
const SYSTEM: &str = r#"set -e
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > /etc/fstab
mkdir -p /etc/systemd/network
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > /etc/systemd/network/80-sarde-dhcp.network
systemctl enable systemd-networkd.service >/dev/null 2>&1 || true
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
if [ -d /etc/ssh ]; then
  rm -f /etc/ssh/ssh_host_*
  mkdir -p /etc/systemd/system/ssh.service.d
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    > /etc/systemd/system/ssh.service.d/sarde-host-keys.conf
fi
"#;

/// Sets the host name: `$1`.
const HOSTNAME: &str = r#"set -e
printf '%s\n' "$1" > /etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$1" > /etc/hosts
"#;

/// Creates the user `$1` (if missing) with sudo rights when `$2` is `sudo`.
const USER: &str = r#"set -e
id "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$1"
if [ "$2" = sudo ]; then
  mkdir -p /etc/sudoers.d
  printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$1" > "/etc/sudoers.d/sarde-$1"
  chmod 440 "/etc/sudoers.d/sarde-$1"
fi
"#;

/// Sets the password hash of `$1` to `$2` (crypt(3) form).
const PASSWORD: &str = r#"set -e
id "$1" >/dev/null 2>&1 || { echo "no user $1 in the image" >&2; exit 1; }
printf '%s:%s\n' "$1" "$2" | chpasswd -e
"#;

/// Adds the key `$2` to `$1`'s authorized_keys.
const SSH_INJECT: &str = r#"set -e
home=$(getent passwd "$1" | cut -d: -f6)
[ -n "$home" ] || { echo "no user $1 in the image" >&2; exit 1; }
mkdir -p "$home/.ssh"
printf '%s\n' "$2" >> "$home/.ssh/authorized_keys"
chown -R "$1:" "$home/.ssh"
chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
"#;

/// Unpacks the tar archive on stdin into `$1` (made if missing); compressed archives too.
const UNTAR: &str = r#"set -e
mkdir -p "$1"
cat > /tmp/sarde-in.tar
tar -xpf /tmp/sarde-in.tar --numeric-owner -C "$1"
rm -f /tmp/sarde-in.tar
"#;

/// Writes stdin to `$1`, or to `$1/$2` when `$1` is a directory.
const UPLOAD: &str = r#"set -e
dest=$1
[ ! -d "$dest" ] || dest="$dest/$2"
cat > "$dest"
"#;

/// Appends the line `$2` to `$1`, after a newline if the file does not end with one.
const APPEND_LINE: &str = r#"set -e
if [ -s "$1" ] && [ -n "$(tail -c 1 "$1")" ]; then printf '\n' >> "$1"; fi
printf '%s\n' "$2" >> "$1"
"#;

/// Sets the time zone `$1`.
const TIMEZONE: &str = r#"set -e
[ -e "/usr/share/zoneinfo/$1" ] || { echo "no time zone $1 in /usr/share/zoneinfo" >&2; exit 1; }
ln -sf "/usr/share/zoneinfo/$1" /etc/localtime
printf '%s\n' "$1" > /etc/timezone
"#;

/// Adds the command `$1` to what the first boot runs (in order), with the unit that runs them.
const FIRSTBOOT: &str = r#"set -e
dir=/usr/local/lib/sarde-firstboot
mkdir -p "$dir"
n=$(ls "$dir" | wc -l)
printf '#!/bin/sh\n%s\n' "$1" > "$dir/$(printf %03d "$n").sh"
chmod 755 "$dir"/*.sh
cat > /etc/systemd/system/sarde-firstboot.service <<'UNIT'
[Unit]
Description=Commands of the image's first boot (sarde build)
ConditionPathExists=!/var/lib/sarde-firstboot.done
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for f in /usr/local/lib/sarde-firstboot/*.sh; do "$f" || exit 1; done'
ExecStartPost=/bin/touch /var/lib/sarde-firstboot.done

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable sarde-firstboot.service >/dev/null 2>&1
"#;

/// Installs packages (`$@`) with apt.
const INSTALL: &str = r#"set -e
apt-get update -qq
apt-get install -y -q --no-install-recommends "$@"
apt-get clean
rm -rf /var/lib/apt/lists/*
"#;

/// Installs a little-vm-helper kernel unpacked to `/` from stdin: links `/vmlinuz` to it.
const INSTALL_KERNEL: &str = r#"set -e
cat > /tmp/sarde-kernel.tar
tar -xpf /tmp/sarde-kernel.tar --numeric-owner -C /
rm -f /tmp/sarde-kernel.tar
kernel=$(ls -1 /boot/vmlinuz-* /boot/vmlinux-* /boot/bzImage* 2>/dev/null | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "no kernel in the installed boot/" >&2; exit 1; }
ln -sf "$kernel" /vmlinuz
"#;

/// Prints the image's kernel and initrd paths (one per line; the initrd's line may be empty):
/// the target of `/vmlinuz` if it is one, else the newest `/boot/vmlinuz-*`.
pub(crate) const FIND_BOOT_FILES: &str = r#"set -e
kernel=$(readlink -f /vmlinuz 2>/dev/null || true)
[ -f "$kernel" ] || kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$kernel" ] || exit 0
version=${kernel##*/vmlinuz-}
initrd=
[ ! -f "/boot/initrd.img-$version" ] || initrd=/boot/initrd.img-$version
printf '%s\n%s\n' "$kernel" "$initrd"
"#;

/// Makes a freshly made system bootable and names it.
pub fn set_up_system(root: &Chroot<'_>, hostname: &str) -> Result<(), BuildError> {
    root.sh("system setup", SYSTEM, &[], None)?;
    set_hostname(root, "host name", hostname)
}

fn set_hostname(root: &Chroot<'_>, step: &str, hostname: &str) -> Result<(), BuildError> {
    root.sh(step, HOSTNAME, &[hostname], None)
}

/// Creates the users of an image, with their passwords and keys.
pub fn add_users(root: &Chroot<'_>, users: &[UserSpec]) -> Result<(), BuildError> {
    for user in users {
        let step = format!("user {}", user.name);
        root.sh(
            &step,
            USER,
            &[&user.name, if user.sudo { "sudo" } else { "" }],
            None,
        )?;
        if let Some(password) = &user.password {
            set_password(root, &step, &user.name, password)?;
        }
        for key in &user.ssh_keys {
            root.sh(&step, SSH_INJECT, &[&user.name, key], None)?;
        }
    }
    Ok(())
}

/// Applies one action; `step` names it in messages, `work` is a scratch directory of the
/// build (for archives of copied-in directories).
pub fn apply(
    root: &Chroot<'_>,
    step: &str,
    action: &Action,
    work: &Path,
) -> Result<(), BuildError> {
    match action {
        Action::RunCommand { cmd } => root.sh(step, cmd, &[], None),
        Action::CopyIn { local, remote_dir } => {
            let tar = archive(root, step, &local.path, work)?;
            root.sh(step, UNTAR, &[remote_dir], Some(open(&tar)?))
        }
        Action::SetHostname { hostname } => set_hostname(root, step, hostname),
        Action::Mkdir { dir } => root.sh(step, "mkdir -p -- \"$1\"", &[dir], None),
        Action::Upload { file, dest } => {
            let name = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            root.sh(
                step,
                UPLOAD,
                &[dest, &name.unwrap_or_default()],
                Some(open(&file.path)?),
            )
        }
        Action::Chmod { mode, file } => {
            root.sh(step, "chmod \"$1\" -- \"$2\"", &[mode, file], None)
        }
        Action::AppendLine { file, line } => root.sh(step, APPEND_LINE, &[file, line], None),
        Action::Link { target, link } => {
            root.sh(step, "ln -sfn -- \"$1\" \"$2\"", &[target, link], None)
        }
        Action::InstallKernel { dir } => {
            let tar = kernel_archive(root, step, &dir.path, work)?;
            root.sh(step, INSTALL_KERNEL, &[], Some(open(&tar)?))
        }
        Action::TarIn { tar, remote_dir } => {
            root.sh(step, UNTAR, &[remote_dir], Some(open(&tar.path)?))
        }
        Action::SshInject { user, key } => root.sh(step, SSH_INJECT, &[user, key], None),
        Action::Password { user, password } => set_password(root, step, user, password),
        Action::Timezone { zone } => root.sh(step, TIMEZONE, &[zone], None),
        Action::Firstboot { cmd } => root.sh(step, FIRSTBOOT, &[cmd], None),
        Action::Install { packages } => {
            let args: Vec<&str> = packages.iter().map(String::as_str).collect();
            root.sh(step, INSTALL, &args, None)
        }
    }
}

/// Sets a user's password as a SHA-512 crypt hash made on the host (`openssl passwd -6`) with
/// a salt derived from the user and the password, so that a rebuild writes the same
/// `/etc/shadow` (the password itself is in the image's VM config anyway).
fn set_password(
    root: &Chroot<'_>,
    step: &str,
    user: &str,
    password: &str,
) -> Result<(), BuildError> {
    use sha2::Digest as _;
    let seed = sha2::Sha256::digest(format!("sardine-build:{user}:{password}"));
    let salt: String = hex::encode(seed).chars().take(16).collect();
    let hash = root.context.output(
        step,
        Command::new("openssl").args(["passwd", "-6", "-salt", &salt, "-stdin"]),
        password.as_bytes(),
    )?;
    let hash = String::from_utf8_lossy(&hash).trim().to_owned();
    root.sh(step, PASSWORD, &[user, &hash], None)
}

fn open(path: &Path) -> Result<File, BuildError> {
    File::open(path).map_err(BuildError::io("reading", path))
}

/// A tar archive of the host file or directory `path` (its last component at the top).
fn archive(
    root: &Chroot<'_>,
    step: &str,
    path: &Path,
    work: &Path,
) -> Result<std::path::PathBuf, BuildError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(root.context.failure(
            step,
            format!("{} is not a file or directory", path.display()),
        ));
    };
    let tar = work.join("copy-in.tar");
    let mut command = Command::new("tar");
    command
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(parent)
        .arg("--")
        .arg(name);
    root.context.run(step, &mut command, None)?;
    Ok(tar)
}

/// A tar archive of a little-vm-helper kernel directory's `boot/` and `lib/modules/`.
fn kernel_archive(
    root: &Chroot<'_>,
    step: &str,
    dir: &Path,
    work: &Path,
) -> Result<std::path::PathBuf, BuildError> {
    let tar = work.join("kernel.tar");
    let mut command = Command::new("tar");
    command.arg("-cf").arg(&tar).arg("-C").arg(dir).arg("boot");
    if dir.join("lib/modules").is_dir() {
        command.arg("lib/modules");
    }
    root.context.run(step, &mut command, None)?;
    Ok(tar)
}
