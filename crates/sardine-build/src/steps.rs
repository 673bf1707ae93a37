//! Steps that need the image booted (any OS with an SSH server, Packer's reach): the image's
//! staging directory, whose disk is already the new overlay on the parent's chain, is started
//! as a transient libvirt domain with absolute paths, its address taken from its own DHCP
//! lease, each step run over SSH as the image's first user (an upload is `cat` over SSH), and
//! the guest shut down cleanly (ACPI, then waiting for it to power off). The transient domain
//! is gone when it powers off; a failure destroys it. The overlay then holds what the steps
//! changed.

use std::path::Path;
use std::time::Duration;

use sardine_ssh::{Login, Session, shell_quote};
use sardine_vm::{AddressSource, BootFile, DomainXml, Libvirt, Vm};

use crate::error::BuildError;
use crate::spec::{ImageSpec, Step};
use crate::tool::StepContext;

/// How long a booting guest may take to get an address and answer SSH (TCG is slow).
const BOOT_PATIENCE: Duration = Duration::from_secs(300);
/// How long a guest may take to power off after the ACPI request.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(180);

/// Boots the image in `staging` (its `domain.xml`), runs its steps with `login`, shuts it down.
pub fn run_steps(
    context: StepContext<'_>,
    image: &ImageSpec,
    staging: &Path,
    login: Login,
    connect: Option<&str>,
) -> Result<(), BuildError> {
    let name = format!(
        "sarde-build-{}-{}",
        crate::build::hostname_of(&image.name),
        std::process::id()
    );
    let xml = bootable_xml(context, staging, &name)?;
    let libvirt =
        Libvirt::open(connect).map_err(|e| context.failure("booting the image", e.to_string()))?;
    let vm = libvirt
        .create_transient(&xml)
        .map_err(|e| context.failure("booting the image", e.to_string()))?;
    let guard = Running { vm: Some(vm) };
    tracing::info!("image {}: booted as {name} for its steps", image.name);
    let (address, _) =
        sardine_vm::run::guest_address(connect, &name, BOOT_PATIENCE, &[AddressSource::Lease])
            .map_err(|e| context.failure("waiting for the guest's address", e.to_string()))?;
    let target = login
        .target(&address.to_string())
        .map_err(|e| context.failure("logging in", e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| context.failure("starting the SSH client", e.to_string()))?;
    runtime.block_on(async {
        let session = Session::connect_with_retry(&target, BOOT_PATIENCE)
            .await
            .map_err(|e| context.failure("logging in over SSH", e.to_string()))?;
        for (n, step) in image.steps.iter().enumerate() {
            let label = format!("step {} ({})", n + 1, step.kind());
            run_step(context, &session, &label, step).await?;
        }
        let _ = session.close().await;
        Ok::<(), BuildError>(())
    })?;
    guard.shut_down(context)
}

/// One step over the session.
async fn run_step(
    context: StepContext<'_>,
    session: &Session,
    label: &str,
    step: &Step,
) -> Result<(), BuildError> {
    let started = std::time::Instant::now();
    let (command, stdin) = match step {
        Step::Ssh { cmd } => (cmd.clone(), None),
        Step::SshUpload { file, dest } => {
            let bytes = fs_err::read(&file.path).map_err(|e| BuildError::Io {
                what: "reading",
                path: file.path.clone(),
                source: e,
            })?;
            (format!("cat > {}", shell_quote(dest)), Some(bytes))
        }
    };
    let mut output = Vec::new();
    let status = if context.verbose {
        let mut out = tokio::io::stderr();
        let mut err = tokio::io::stderr();
        session
            .exec(&command, stdin.as_deref(), &mut out, &mut err)
            .await
    } else {
        let mut err = Vec::new();
        let status = session
            .exec(&command, stdin.as_deref(), &mut output, &mut err)
            .await;
        output.extend_from_slice(&err);
        status
    }
    .map_err(|e| context.failure(label, e.to_string()))?;
    if !status.success() {
        let text = String::from_utf8_lossy(&output);
        let lines: Vec<&str> = text.lines().collect();
        return Err(BuildError::Step {
            image: context.image.to_owned(),
            step: label.to_owned(),
            what: format!("`{command}` exited with {:?}", status.code()),
            output: lines[lines.len().saturating_sub(25)..].join("\n"),
        });
    }
    tracing::info!(
        "image {}: {label}: done in {:.1?}",
        context.image,
        started.elapsed()
    );
    Ok(())
}

/// The staging directory's domain with absolute paths, under `name`.
fn bootable_xml(
    context: StepContext<'_>,
    staging: &Path,
    name: &str,
) -> Result<String, BuildError> {
    let path = staging.join("domain.xml");
    let text = fs_err::read_to_string(&path).map_err(|e| BuildError::Io {
        what: "reading",
        path: path.clone(),
        source: e,
    })?;
    let bad = |e: &dyn std::fmt::Display| {
        context.failure("booting the image", format!("{}: {e}", path.display()))
    };
    let mut domain = DomainXml::parse(&text).map_err(|e| bad(&e))?;
    domain.set_name(name);
    domain.set_uuid(None);
    for disk in domain.disks() {
        if let Some(source) = &disk.source {
            domain.set_disk_source(disk.index, &staging.join(source).to_string_lossy());
        }
    }
    domain.remove_backing_stores();
    let boot = domain.boot_files();
    for (which, file) in [
        (BootFile::Kernel, boot.kernel),
        (BootFile::Initrd, boot.initrd),
        (BootFile::Nvram, boot.nvram),
    ] {
        if let Some(file) = file {
            domain.set_boot_file(which, Some(&staging.join(file).to_string_lossy()));
        }
    }
    domain.to_xml().map_err(|e| bad(&e))
}

/// The booted image: destroyed when dropped unless it was shut down.
struct Running {
    vm: Option<Vm>,
}

impl Running {
    /// Shuts the guest down cleanly and waits until it is off.
    fn shut_down(mut self, context: StepContext<'_>) -> Result<(), BuildError> {
        let Some(vm) = self.vm.take() else {
            return Ok(());
        };
        let step = "shutting the guest down";
        let result = vm
            .shutdown()
            .and_then(|()| vm.wait_for_shutoff(SHUTDOWN_PATIENCE))
            .map_err(|e| {
                context.failure(
                    step,
                    format!("{e} (it must power off by itself after an ACPI shutdown)"),
                )
            });
        if result.is_err() {
            let _ = vm.destroy();
        }
        result
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(vm) = self.vm.take() {
            let _ = vm.destroy();
        }
    }
}
