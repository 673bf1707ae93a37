//! What a built image carries besides its disk: the kernel and initrd taken out of its file
//! system (direct kernel boot: no boot loader is installed offline, and the VM boots faster),
//! the libvirt domain definition, and the sardine VM config that tells `sarde ssh`, `sarde run`
//! and the executor how to log in.

use std::path::Path;

use serde_json::json;

use crate::chroot::Chroot;
use crate::error::BuildError;
use crate::spec::{UserSpec, VmSpec};

/// The file names of an image's kernel and initrd in its build directory (and image).
pub const KERNEL: &str = "vmlinuz";
/// See [`KERNEL`].
pub const INITRD: &str = "initrd.img";

/// Which boot files an image has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootFiles {
    /// A kernel was found (`vmlinuz`).
    pub kernel: bool,
    /// An initrd was found (`initrd.img`).
    pub initrd: bool,
}

/// Copies the image's kernel and initrd out of its file system into `dir`.
pub fn extract_boot_files(root: &Chroot<'_>, dir: &Path) -> Result<BootFiles, BuildError> {
    let step = "finding the kernel";
    let listing = root.output(step, crate::actions::FIND_BOOT_FILES, &[])?;
    let listing = String::from_utf8_lossy(&listing);
    let mut lines = listing.lines();
    let mut found = BootFiles {
        kernel: false,
        initrd: false,
    };
    for (name, flag) in [(KERNEL, &mut found.kernel), (INITRD, &mut found.initrd)] {
        let Some(path) = lines.next().filter(|p| !p.is_empty()) else {
            continue;
        };
        let bytes = root.output(step, "cat -- \"$1\"", &[path])?;
        let target = dir.join(name);
        // A new file: the one there may be a hard link to the parent's.
        let _ = fs_err::remove_file(&target);
        fs_err::write(&target, bytes).map_err(|e| BuildError::Io {
            what: "writing",
            path: target,
            source: e,
        })?;
        *flag = true;
    }
    Ok(found)
}

/// The domain definition of an image whose disk is `disk` (a file name of its directory).
pub fn domain_xml(name: &str, disk: &str, boot: BootFiles, vm: &VmSpec) -> String {
    let mut os = String::from("<type arch='x86_64' machine='pc'>hvm</type>\n");
    if boot.kernel {
        os.push_str(&format!("    <kernel>{KERNEL}</kernel>\n"));
        if boot.initrd {
            os.push_str(&format!("    <initrd>{INITRD}</initrd>\n"));
        }
        os.push_str(&format!("    <cmdline>{}</cmdline>\n", escape(&vm.cmdline)));
    }
    format!(
        "<domain type='{kind}'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>{cpus}</vcpu>
  <os>
    {os}  </os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='{network}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'/>
    <console type='pty'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
",
        kind = escape(&vm.domain_type),
        name = escape(name),
        memory = vm.memory_mib,
        cpus = vm.cpus,
        disk = escape(disk),
        network = escape(&vm.network),
    )
}

/// The sardine VM config of an image with these users (those with a password can log in
/// with it) and an SSH service.
pub fn vmconfig(users: &[UserSpec]) -> serde_json::Value {
    let users: Vec<_> = users
        .iter()
        .filter_map(|u| {
            u.password
                .as_ref()
                .map(|password| json!({"username": u.name, "password": password}))
        })
        .collect();
    json!({
        "users": users,
        "services": [{"service": "ssh", "port": 22, "protocol": "tcp"}],
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_boots_the_kernel_from_the_image() {
        let boot = BootFiles {
            kernel: true,
            initrd: true,
        };
        let xml = domain_xml("deb", "deb.qcow2", boot, &VmSpec::default());
        let domain = sardine_vm::DomainXml::parse(&xml).unwrap();
        assert_eq!(domain.domain_type().as_deref(), Some("kvm"));
        assert!(
            xml.contains("<kernel>vmlinuz</kernel>") && xml.contains("<initrd>initrd.img</initrd>")
        );
        assert!(xml.contains("<source file='deb.qcow2'/>"));
        let bare = domain_xml(
            "deb",
            "deb.qcow2",
            BootFiles {
                kernel: false,
                initrd: false,
            },
            &VmSpec::default(),
        );
        assert!(!bare.contains("<kernel>"));
    }

    #[test]
    fn vmconfig_lists_users_with_passwords() {
        let users = [
            UserSpec {
                name: "a".into(),
                password: Some("pw".into()),
                ssh_keys: vec![],
                sudo: false,
            },
            UserSpec {
                name: "b".into(),
                password: None,
                ssh_keys: vec![],
                sudo: false,
            },
        ];
        let config = vmconfig(&users);
        let text = serde_json::to_vec(&config).unwrap();
        let parsed = sardine_vm::vmconfig::VmConfig::parse(&text, "test").unwrap();
        assert_eq!(parsed.users.len(), 1);
        assert_eq!(parsed.ssh_port(), Some(22));
    }
}
