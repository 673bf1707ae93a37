//! The job VM's identity, checked before every stage's script runs: a job must never run in
//! another job's guest.
//!
//! Clones of one image share host keys, and two guests may even share an address (systemd
//! derives its DHCP client id from `/etc/machine-id`; an image with a fixed one gets the same
//! lease in every clone). So prepare checks that the address is the lease of the VM's own MAC,
//! that no other running VM on the host claims it, and, once logged in, that the guest has an
//! interface with the VM's MAC; it then records address, MACs and the SSH host key in
//! `<clonedir>/<vm>.identity` (0600, readable by the executor only). Every run stage finds
//! the address again and must find the same one, logs in with that host key pinned (a
//! different key ends the login before any password is sent), and checks the MAC again.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sardine_ssh::Session;
use serde::{Deserialize, Serialize};

/// Lists the guest's MAC addresses: Linux (`/sys`), BSDs and macOS (`ifconfig`), Windows'
/// `cmd.exe` (`getmac`); each alternative runs only when the one before failed.
const LIST_MACS: &str = "cat /sys/class/net/*/address || ifconfig -a || getmac";

/// What prepare found out about the job's VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The guest's address (its DHCP lease).
    pub address: IpAddr,
    /// The VM's MAC addresses, lower case.
    pub macs: Vec<String>,
    /// The SHA-256 fingerprint of the guest's SSH host key at the first login.
    pub host_key: String,
}

impl Identity {
    /// Where prepare records the identity of the VM `name`.
    pub fn path(clonedir: &Path, name: &str) -> PathBuf {
        clonedir.join(format!("{name}.identity"))
    }

    /// Writes the record (private, replaced atomically).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use fs_err::os::unix::fs::OpenOptionsExt as _;
        use std::io::Write as _;
        let temporary = path.with_extension("identity.tmp");
        let mut file = fs_err::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&serde_json::to_vec(self)?)?;
        file.sync_all()?;
        fs_err::rename(&temporary, path)?;
        Ok(())
    }

    /// Reads the record prepare wrote.
    pub fn load(path: &Path) -> anyhow::Result<Identity> {
        let bytes = fs_err::read(path)
            .context("the job's VM has no identity record; did prepare succeed?")?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("the identity record {} is damaged", path.display()))
    }
}

/// Fails unless the guest behind `session` has an interface with one of `macs`.
pub async fn check_guest_mac(
    session: &Session,
    vm: &str,
    address: IpAddr,
    macs: &[String],
) -> anyhow::Result<()> {
    let output = session
        .output(LIST_MACS)
        .await
        .context("cannot ask the guest for its MAC addresses")?;
    let listed = String::from_utf8_lossy(&output.stdout);
    if macs.iter().any(|mac| lists_mac(&listed, mac)) {
        return Ok(());
    }
    bail!(
        "the guest at {address} is not the job's VM {vm}: none of its interfaces has the VM's MAC {} \
         (another VM holds the address, e.g. clones of an image with a fixed /etc/machine-id; \
         see docs/gitlab-runner.md, \"Preparing images\")",
        macs.join(", ")
    )
}

/// Whether `listing` (any tool's output) names `mac`, in any case, with `:` or `-` between
/// the bytes.
fn lists_mac(listing: &str, mac: &str) -> bool {
    let normal = |text: &str| text.to_ascii_lowercase().replace('-', ":");
    normal(listing).contains(&normal(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_found_in_every_tool_s_format() {
        let mac = "52:54:00:ab:cd:ef";
        assert!(lists_mac("00:00:00:00:00:00\n52:54:00:ab:cd:ef\n", mac));
        assert!(lists_mac("\tether 52:54:00:ab:cd:ef\n", mac));
        assert!(lists_mac("52-54-00-AB-CD-EF   \\Device\\Tcpip_{…}", mac));
        assert!(!lists_mac("52:54:00:ab:cd:ee\n", mac));
    }

    #[test]
    fn records_round_trip_privately() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = Identity::path(dir.path(), "gitlab-1_r0");
        let identity = Identity {
            address: "10.0.0.5".parse().unwrap(),
            macs: vec!["52:54:00:ab:cd:ef".into()],
            host_key: "SHA256:abc".into(),
        };
        identity.save(&path).unwrap();
        assert_eq!(Identity::load(&path).unwrap(), identity);
        let mode = fs_err::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(Identity::load(&dir.path().join("missing")).is_err());
    }
}
