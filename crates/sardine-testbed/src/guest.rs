//! The tiny bootable guest (built by `scripts/build-guest`) and test VMs made from it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use virt::connect::Connect;
use virt::domain::Domain;

use crate::environment::{libvirt_uri, scratch_dir, workspace_root};
use crate::names::unique_name;

/// The libvirt network (isolated, with DHCP) inside the test bed's namespace.
pub const NETWORK: &str = "sarde-test";

/// The built guest: a kernel, an initramfs, a qcow2 data disk and the SSH credentials.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The cache directory holding the files.
    pub dir: PathBuf,
    /// SSH user of the guest.
    pub user: String,
    /// SSH password of that user.
    pub password: String,
}

impl GuestImage {
    /// The kernel (direct kernel boot).
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// The initramfs holding the whole userland.
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }

    /// The qcow2 data disk (ext4, mounted on `/data` in the guest).
    pub fn data_disk(&self) -> PathBuf {
        self.dir.join("data.qcow2")
    }
}

/// Builds the guest once (the script caches it on disk, so later processes just read it).
pub fn guest_image() -> &'static GuestImage {
    static IMAGE: OnceLock<GuestImage> = OnceLock::new();
    IMAGE.get_or_init(|| match build_guest() {
        Ok(image) => image,
        Err(e) => {
            panic!("building the tiny guest failed: {e:#}\nhint: run scripts/build-guest as root")
        }
    })
}

fn build_guest() -> anyhow::Result<GuestImage> {
    let script = workspace_root().join("scripts/build-guest");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .context("running scripts/build-guest")?;
    if !output.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout)?.trim());
    let env = fs_err::read_to_string(dir.join("guest.env"))?;
    let value = |key: &str| {
        env.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .with_context(|| format!("{key} missing from guest.env"))
    };
    Ok(GuestImage {
        user: value("SARDE_GUEST_USER")?,
        password: value("SARDE_GUEST_PASSWORD")?,
        dir,
    })
}

/// How to make a test VM.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Label in the VM's unique name.
    pub label: String,
    /// Make the data disk a 2-element backing chain (`base.qcow2` ← `data.qcow2`, relative).
    pub backing_chain: bool,
    /// Guest memory.
    pub memory_mib: u32,
    /// Boot through UEFI (OVMF, a pflash loader and an `nvram.fd` variable store made from
    /// OVMF's template at the first start) instead of SeaBIOS.
    pub uefi: bool,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            label: "vm".to_owned(),
            backing_chain: false,
            memory_mib: 256,
            uefi: false,
        }
    }
}

/// A persistent libvirt domain running the tiny guest, with its files in its own directory.
///
/// Dropping it destroys and undefines the domain and removes the directory, even when the
/// test failed.
pub struct TestVm {
    guard: VmGuard,
    dir: tempfile::TempDir,
}

impl TestVm {
    /// Copies the guest's files into a new directory and defines the domain (not started).
    pub fn create(options: &VmOptions) -> anyhow::Result<TestVm> {
        crate::require();
        let image = guest_image();
        let name = unique_name(&options.label);
        fs_err::create_dir_all(scratch_dir())?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(scratch_dir())?;
        for file in [image.kernel(), image.initrd()] {
            fs_err::copy(
                &file,
                dir.path().join(file.file_name().context("file name")?),
            )?;
        }
        if options.backing_chain {
            copy_sparse(&image.data_disk(), &dir.path().join("base.qcow2"))?;
            create_overlay(dir.path(), "base.qcow2", "data.qcow2")?;
        } else {
            copy_sparse(&image.data_disk(), &dir.path().join("data.qcow2"))?;
        }
        let xml = domain_xml(&name, dir.path(), options);
        let conn = Connect::open(Some(&libvirt_uri())).context("connecting to libvirt")?;
        conn.define_domain_xml(&xml)
            .with_context(|| format!("defining {name}"))?;
        Ok(TestVm {
            guard: VmGuard { conn, name },
            dir,
        })
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.guard.name
    }

    /// The directory with the VM's files (`vmlinuz`, `initrd.img`, `data.qcow2`, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the domain.
    pub fn start(&self) -> anyhow::Result<()> {
        self.guard.start()
    }

    /// Waits for the guest's DHCP lease and returns its address.
    pub fn wait_for_ip(&self, timeout: Duration) -> anyhow::Result<IpAddr> {
        self.guard.wait_for_ip(timeout)
    }

    /// Runs `command` in the guest over SSH (retrying the login until it works).
    pub fn ssh(&self, command: &str) -> anyhow::Result<SshOutput> {
        self.guard.ssh(command)
    }

    /// Asks the guest to power off (ACPI) and waits until it is off.
    pub fn shutdown(&self, timeout: Duration) -> anyhow::Result<()> {
        self.guard.shutdown(timeout)
    }

    /// The boot log of the guest's serial console.
    pub fn console_log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

/// What a command run over SSH printed, and its exit code.
#[derive(Debug, Clone)]
pub struct SshOutput {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Owns the libvirt domains whose names start with one of its prefixes: destroys and undefines
/// them on drop. For domains the code under test names with a suffix a test cannot know (base
/// VMs of the same image imported by another store get one).
#[derive(Default)]
pub struct PrefixGuard {
    prefixes: Vec<String>,
}

impl PrefixGuard {
    /// A guard of no domain yet.
    pub fn new() -> PrefixGuard {
        PrefixGuard::default()
    }

    /// Also owns the domains whose names start with `prefix`.
    pub fn add(&mut self, prefix: &str) {
        self.prefixes.push(prefix.to_owned());
    }
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let Ok(conn) = Connect::open(Some(&libvirt_uri())) else {
            return;
        };
        let names: Vec<String> = conn
            .list_all_domains(0)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| d.name().ok())
            .filter(|name| self.prefixes.iter().any(|p| name.starts_with(p.as_str())))
            .collect();
        for name in names {
            // Dropping the guard destroys and undefines the domain.
            drop(VmGuard::adopt(&name));
        }
    }
}

/// Owns a libvirt domain by name: destroys and undefines it on drop.
///
/// Use it for domains a test makes through `sarde` (imports, clones), so that they never
/// outlive the test.
pub struct VmGuard {
    conn: Connect,
    name: String,
}

impl VmGuard {
    /// Takes ownership of the domain called `name` (which may not exist yet).
    pub fn adopt(name: &str) -> anyhow::Result<VmGuard> {
        let conn = Connect::open(Some(&libvirt_uri())).context("connecting to libvirt")?;
        Ok(VmGuard {
            conn,
            name: name.to_owned(),
        })
    }

    fn domain(&self) -> anyhow::Result<Domain> {
        self.conn
            .lookup_domain_by_name(&self.name)
            .with_context(|| format!("looking up {}", self.name))
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the domain is defined.
    pub fn exists(&self) -> bool {
        self.domain().is_ok()
    }

    /// Starts the domain.
    pub fn start(&self) -> anyhow::Result<()> {
        self.domain()?
            .create()
            .with_context(|| format!("starting {}", self.name))?;
        Ok(())
    }

    /// Waits for the guest's DHCP lease and returns its IPv4 address.
    pub fn wait_for_ip(&self, timeout: Duration) -> anyhow::Result<IpAddr> {
        let domain = self.domain()?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            let source = virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE;
            if let Ok(interfaces) = domain.interface_addresses(source, 0) {
                let address = interfaces
                    .iter()
                    .flat_map(|i| &i.addrs)
                    .find(|a| a.typed == virt::sys::VIR_IP_ADDR_TYPE_IPV4 as i64)
                    .and_then(|a| a.addr.parse().ok());
                if let Some(address) = address {
                    return Ok(address);
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!("{} got no DHCP lease within {timeout:?}", self.name)
    }

    /// Runs `command` in the guest over SSH with the guest's credentials.
    pub fn ssh(&self, command: &str) -> anyhow::Result<SshOutput> {
        let address = self.wait_for_ip(Duration::from_secs(60))?;
        let image = guest_image();
        ssh(&address.to_string(), &image.user, &image.password, command)
    }

    /// Asks the guest to power off (ACPI) and waits until it is off; destroys it after `timeout`.
    pub fn shutdown(&self, timeout: Duration) -> anyhow::Result<()> {
        let domain = self.domain()?;
        if !domain.is_active()? {
            return Ok(());
        }
        domain
            .shutdown()
            .with_context(|| format!("shutting down {}", self.name))?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            // A transient domain disappears when it stops: that is off too.
            if !domain.is_active().unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = domain.destroy();
        bail!("{} did not power off within {timeout:?}", self.name)
    }
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        if let Ok(domain) = self.conn.lookup_domain_by_name(&self.name) {
            if domain.is_active().unwrap_or(false) {
                let _ = domain.destroy();
            }
            let flags =
                virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM | virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
            if domain.undefine_flags(flags).is_err() {
                let _ = domain.undefine();
            }
        }
    }
}

/// Runs one command over SSH (retrying the login for up to 60 s: sshd may start after the lease).
pub fn ssh(host: &str, user: &str, password: &str, command: &str) -> anyhow::Result<SshOutput> {
    let target = sardine_ssh::Target {
        host: host.to_owned(),
        port: 22,
        user: user.to_owned(),
        auth: vec![sardine_ssh::Auth::Password(password.to_owned())],
        host_key: None,
    };
    let command = command.to_owned();
    // A thread of its own, so that this works from sync and async tests alike.
    std::thread::spawn(move || -> anyhow::Result<SshOutput> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let session =
                sardine_ssh::Session::connect_with_retry(&target, Duration::from_secs(60)).await?;
            let output = session.output(&command).await?;
            session.close().await?;
            Ok(SshOutput {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the SSH thread panicked"))?
}

fn domain_xml(name: &str, dir: &Path, options: &VmOptions) -> String {
    let memory_mib = options.memory_mib;
    let firmware = if options.uefi {
        format!(
            "<loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>
    <nvram template='{OVMF_VARS}'>{}/nvram.fd</nvram>
    ",
            dir.display()
        )
    } else {
        String::new()
    };
    let dir = dir.display();
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    {firmware}<kernel>{dir}/vmlinuz</kernel>
    <initrd>{dir}/initrd.img</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{dir}/data.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='{NETWORK}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='{dir}/console.log'/>
    </serial>
  </devices>
</domain>
"
    )
}

/// OVMF's firmware and variable store template (Debian's `ovmf` package), for UEFI guests.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// See [`OVMF_CODE`].
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Copies a file keeping its holes.
fn copy_sparse(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(to)
        .status()?;
    if !status.success() {
        bail!("cp {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// Creates the qcow2 image `overlay` on top of the qcow2 image `backing` (both paths as
/// `qemu-img` takes them, relative to `dir`, where it runs; `backing` is recorded as given).
pub fn create_overlay(dir: &Path, backing: &str, overlay: &str) -> anyhow::Result<()> {
    qemu_img(
        dir,
        &[
            "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, overlay,
        ],
    )
}

/// Runs `qemu-img ARGS` in `dir`; fails with its stderr unless it succeeds.
pub fn qemu_img(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .output()?;
    if !output.status.success() {
        bail!(
            "qemu-img {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
