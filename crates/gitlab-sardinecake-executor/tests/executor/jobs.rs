//! Whole jobs against the test bed: the tiny guest is exported and pushed to a real registry,
//! and the executor fetches, imports, clones, boots and logs in to it like it would on a runner.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use sardine_oci::registry::{ClientOptions, RegistryClient};
use sardine_oci::transfer::{TransferOptions, push_image};
use sardine_testbed::{
    NETWORK, Registry, RegistryAuth, TestVm, VmGuard, VmOptions, guest_image, libvirt_uri,
    scratch_dir, unique_name,
};
use sardine_vm::NoProgress;
use sardine_vm::export::{DiskFormat, ExportOptions, export};

use crate::harness::{Job, write_config};

/// A registry holding a fresh image of the tiny guest, and an executor configuration whose
/// store, VM and clone directories are this bed's own. Removes the imported base VM on drop.
struct Bed {
    /// Removes the base VM the executor imports (named after the image ID).
    _base: VmGuard,
    registry: Registry,
    image: String,
    config_file: PathBuf,
    dir: tempfile::TempDir,
}

impl Bed {
    fn new(label: &str) -> Bed {
        Bed::with(label, |registry, dir| {
            let reference =
                Reference::parse(&format!("{}/{}:1", registry.host(), unique_name(label))).unwrap();
            let image_id = publish(registry, &reference, dir);
            (reference, image_id)
        })
    }

    /// A bed whose image `publish` pushes to the bed's registry (returning its reference and
    /// image ID), with `dir` for its files.
    fn with(
        label: &str,
        publish: impl FnOnce(&Registry, &std::path::Path) -> (Reference, String),
    ) -> Bed {
        sardine_testbed::require();
        let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
        let dir = tempfile::Builder::new()
            .prefix(&format!("sardine-test-executor-{label}-"))
            .tempdir_in(scratch_dir())
            .unwrap();
        let (reference, image_id) = publish(&registry, dir.path());
        let config = format!(
            "[DEFAULT]\nconnect = {}\nocidir = {d}/oci\nvmdir = {d}/vms\nclonedir = {d}/clones\n\
             allowed-images = 127.0.0.1:*/*\ntimeout = 120\nnetwork = {NETWORK}\n",
            libvirt_uri(),
            d = dir.path().display()
        );
        let config_file = write_config(dir.path(), &config);
        Bed {
            _base: VmGuard::adopt(&image_id).unwrap(),
            registry,
            image: reference.to_string(),
            config_file,
            dir,
        }
    }

    fn clonedir(&self) -> PathBuf {
        self.dir.path().join("clones")
    }

    fn job(&self) -> (Job, VmGuard) {
        let job = Job::new(Some(&self.image), &self.config_file);
        let guard = VmGuard::adopt(&job.vm_name()).unwrap();
        (job, guard)
    }

    /// Asserts that nothing of the job is left: no domain, no clone directory.
    #[track_caller]
    fn assert_gone(&self, job: &Job, guard: &VmGuard) {
        assert!(
            !guard.exists(),
            "the domain {} is still there",
            job.vm_name()
        );
        assert!(
            !self.clonedir().join(job.vm_name()).exists(),
            "the clone directory is still there"
        );
    }
}

/// Exports a new test VM with a sardine config (the guest's SSH credentials) and pushes it;
/// returns the image ID.
fn publish(registry: &Registry, reference: &Reference, dir: &std::path::Path) -> String {
    let guest = guest_image();
    let vm = TestVm::create(&VmOptions {
        label: "executor".into(),
        ..VmOptions::default()
    })
    .unwrap();
    let vmconfig = dir.join("vmconfig.json");
    let config = serde_json::json!({
        "users": [{"username": guest.user, "password": guest.password}],
        "services": [{"service": "ssh", "port": 22, "protocol": "tcp"}],
        "sardine-test": reference.to_string(),
    });
    fs_err::write(&vmconfig, config.to_string()).unwrap();
    let domain_xml = dir.join("domain.xml");
    fs_err::write(&domain_xml, on_host_bridge(&vm)).unwrap();
    let publisher = Store::new(dir.join("publisher"));
    let report = export(&ExportOptions {
        vm: vm.name(),
        reference,
        store: &publisher,
        connect: Some(&libvirt_uri()),
        domain_xml_file: Some(&domain_xml),
        vmconfig_file: Some(&vmconfig),
        disk_format: DiskFormat::Chunked {
            chunk_size: Some(8 << 20),
        },
        force: false,
        threads: 2,
        created: None,
        progress: &NoProgress,
    })
    .unwrap();
    push(registry, &publisher, reference);
    report.config_digest.to_string()
}

/// Builds the test bed's derived Debian image (`sarde build`, from the shared build cache) and
/// pushes it; returns its reference and image ID.
fn publish_built(registry: &Registry, dir: &std::path::Path) -> (Reference, String) {
    let cache = dir.join("build-cache");
    sardine_testbed::copy_build_cache(&cache);
    let file = sardine_build::load(
        &sardine_testbed::build_files_dir().join("debian.yaml"),
        "sid",
    )
    .unwrap();
    let publisher = Store::new(dir.join("publisher"));
    let prefix = format!("{}/{}/", registry.host(), unique_name("built"));
    let images = ["debian-dev".to_owned()];
    let access = sardine_vm::remote::RegistryAccess::default();
    let reports = sardine_build::build(
        &file,
        &sardine_build::BuildOptions {
            images: &images,
            force_rebuild: false,
            dry_run: false,
            prefix: &prefix,
            tag: "1",
            cache_dir: &cache,
            store: &publisher,
            connect: Some(&libvirt_uri()),
            access: &access,
            fetch_progress: std::sync::Arc::new(NoProgress),
            source_date_epoch: Some(sardine_testbed::BUILD_EPOCH),
            verbose: false,
            threads: 2,
            progress: &NoProgress,
        },
    )
    .unwrap();
    let built = reports.last().unwrap();
    assert_eq!(built.outcome, sardine_build::Outcome::Cached, "{reports:?}");
    let reference = Reference::parse(&built.reference).unwrap();
    push(registry, &publisher, &reference);
    (reference, format!("sha256:{}", built.id.clone().unwrap()))
}

/// Pushes `reference` from `publisher` to `registry` under the same name.
fn push(registry: &Registry, publisher: &Store, reference: &Reference) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = RegistryClient::new(&registry.host(), ClientOptions::default()).unwrap();
    runtime
        .block_on(push_image(
            &client,
            publisher,
            reference,
            reference,
            &TransferOptions::default(),
        ))
        .unwrap();
}

/// The definition of `vm` with its interface on the host bridge `hostlan0`, as a hostile image
/// would put a job on the host's LAN: the executor must put it on its own network instead (the
/// test bed's namespace has no `hostlan0`, so a job VM left on it would not even start).
fn on_host_bridge(vm: &TestVm) -> String {
    let libvirt = sardine_vm::Libvirt::open(Some(&libvirt_uri())).unwrap();
    let xml = libvirt
        .lookup(vm.name())
        .unwrap()
        .unwrap()
        .xml(true)
        .unwrap();
    let start = xml.find("<interface").unwrap();
    let end = xml.find("</interface>").unwrap() + "</interface>".len();
    let bridged =
        "<interface type='bridge'><source bridge='hostlan0'/><model type='virtio'/></interface>";
    format!("{}{bridged}{}", &xml[..start], &xml[end..])
}

/// The job VM is on the executor's network behind clean-traffic, whatever its image said.
fn assert_on_the_job_network(job: &Job) {
    let libvirt = sardine_vm::Libvirt::open(Some(&libvirt_uri())).unwrap();
    let xml = libvirt
        .lookup(&job.vm_name())
        .unwrap()
        .unwrap()
        .xml(false)
        .unwrap();
    assert!(!xml.contains("hostlan0"), "{xml}");
    assert!(xml.contains(&format!("network='{NETWORK}'")), "{xml}");
    assert!(xml.contains("filter='clean-traffic'"), "{xml}");
}

/// config and prepare, as the runner starts every job.
fn config_and_prepare(job: &Job) {
    let config = job.stage(&["config"]);
    let json: serde_json::Value = serde_json::from_str(&config.expect(0).stdout).unwrap();
    assert_eq!(json["driver"]["name"], "gitlab-sardinecake-executor");
    let prepare = job.stage(&["prepare"]);
    prepare.expect(0);
    assert!(
        prepare
            .stderr
            .contains(&format!("VM {} is ready", job.vm_name())),
        "{}",
        prepare.stderr
    );
    for step in [
        "fetching",
        "importing",
        "starting",
        "waiting for the address",
        "waiting for an SSH login",
    ] {
        let logged = prepare
            .stderr
            .lines()
            .any(|line| line.contains(step) && line.contains(" done in "));
        assert!(
            logged,
            "prepare logs the step {step:?} with its duration:\n{}",
            prepare.stderr
        );
    }
}

#[test]
fn executor_job_runs_in_the_guest_and_leaves_nothing_behind() {
    let bed = Bed::new("job");
    let (job, guard) = bed.job();
    config_and_prepare(&job);
    assert_on_the_job_network(&job);
    job.run("prepare_script", &["echo \"Running on $(hostname)\""])
        .expect(0);
    job.run("get_sources", &["echo sources > source.txt"])
        .expect(0);
    let build = job.run(
        "build_script",
        &[
            "cat source.txt",
            "echo \"in-guest:$(cat /proc/cmdline)\"",
            "echo 'grüße ☃'",
        ],
    );
    build.expect(0);
    assert!(
        build.stdout.contains("in-guest:console=ttyS0"),
        "the output comes from inside the guest:\n{}",
        build.stdout
    );
    assert!(
        build.stdout.contains("\nsources\n"),
        "stages share the guest:\n{}",
        build.stdout
    );
    assert!(
        build.stdout.contains("grüße ☃"),
        "non-ASCII scripts work:\n{}",
        build.stdout
    );
    job.run("after_script", &["echo after"]).expect(0);
    job.run("cleanup_file_variables", &["rm -f /tmp/no-such-file"])
        .expect(0);
    assert!(!job.build_exit_code_file().exists());
    job.stage(&["cleanup"]).expect(0);
    bed.assert_gone(&job, &guard);
    // Only the lock stripes of `sarde clone` stay (`.clone-XX.lock`, at most 256 per directory).
    let leftovers: Vec<String> = fs_err::read_dir(bed.clonedir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !(name.starts_with(".clone-") && name.ends_with(".lock")))
        .collect();
    assert!(leftovers.is_empty(), "no overlay remains: {leftovers:?}");
    job.stage(&["cleanup"]).expect(0);
}

/// A job in a real Debian guest made by `sarde build` (systemd, OpenSSH, apt's packages).
#[test]
fn executor_job_runs_in_a_built_debian_guest() {
    let bed = Bed::with("built", publish_built);
    let (job, guard) = bed.job();
    config_and_prepare(&job);
    assert_on_the_job_network(&job);
    let build = job.run(
        "build_script",
        &[
            "hello",
            "cat /opt/files/greeting.txt /etc/sarde-ran",
            "systemctl is-system-running || true",
            "id -un",
        ],
    );
    build.expect(0);
    for wanted in ["Hello, world!", "hello from the build host", "ran", "sarde"] {
        assert!(
            build.stdout.contains(wanted),
            "{wanted:?} missing:\n{}",
            build.stdout
        );
    }
    job.stage(&["cleanup"]).expect(0);
    bed.assert_gone(&job, &guard);
}

#[test]
fn executor_job_failures_keep_their_exit_codes_and_cancel_is_prompt() {
    let bed = Bed::new("fail");
    let (job, guard) = bed.job();
    config_and_prepare(&job);

    let build = job.run("build_script", &["echo before", "exit 3", "echo never"]);
    build.expect(1);
    assert!(
        build.stdout.contains("before") && !build.stdout.contains("\nnever\n"),
        "{}",
        build.stdout
    );
    assert_eq!(
        fs_err::read_to_string(job.build_exit_code_file()).unwrap(),
        "3\n"
    );

    let release = job.run("step_release", &["exit 2"]);
    release.expect(1);
    assert_eq!(
        fs_err::read_to_string(job.build_exit_code_file()).unwrap(),
        "2\n",
        "a script's 2 is no system failure"
    );

    let after = job.run("after_script", &["echo after-script-ran"]);
    after.expect(0);
    assert!(
        after.stdout.contains("after-script-ran"),
        "{}",
        after.stdout
    );

    let mut child = job.spawn_run("build_script", &["echo started", "sleep 600"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("\nstarted\n") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the script never started:\n{seen}"
        );
        seen.push_str(&line);
    }
    let cancelled_at = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(15),
        "cancel took {:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");

    job.run("after_script", &["echo after-cancel"]).expect(0);

    // A guest without the VM's MAC (as when another VM answers at its address): refused.
    let record = bed.clonedir().join(format!("{}.identity", job.vm_name()));
    let original = fs_err::read_to_string(&record).unwrap();
    let mut other: serde_json::Value = serde_json::from_str(&original).unwrap();
    other["macs"] = serde_json::json!(["52:54:00:00:00:01"]);
    fs_err::write(&record, other.to_string()).unwrap();
    let elsewhere = job.run("after_script", &["echo reached"]);
    elsewhere.expect(2);
    assert!(
        elsewhere.stderr.contains("is not the job's VM"),
        "{}",
        elsewhere.stderr
    );
    assert!(
        !elsewhere.stdout.contains("reached"),
        "{}",
        elsewhere.stdout
    );
    fs_err::write(&record, original).unwrap();

    // Another SSH server (new host keys) at the job VM's address: the run stages refuse it.
    job.run(
        "after_script",
        &["(sleep 1; kill $(pidof dropbear); rm -f /etc/dropbear/*; dropbear -R -E -p 22) >/dev/null 2>&1 </dev/null &"],
    )
    .expect(0);
    let impostor = (0..60)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(500));
            job.run("after_script", &["echo reached"])
        })
        .find(|run| run.code != Some(0) || !run.stdout.contains("reached"))
        .expect("the run stage kept logging in after the host key changed");
    impostor.expect(2);
    assert!(
        impostor.stderr.contains("not the pinned"),
        "a system failure naming the host key:\n{}",
        impostor.stderr
    );
    assert!(!impostor.stdout.contains("reached"), "{}", impostor.stdout);

    job.stage(&["cleanup"]).expect(0);
    bed.assert_gone(&job, &guard);
}

#[test]
fn executor_job_system_failures_are_clear_and_cleanup_still_works() {
    let bed = Bed::new("sysfail");

    let missing = format!("{}/no/such-image:1", bed.registry.host());
    let job = Job::new(Some(&missing), &bed.config_file);
    let guard = VmGuard::adopt(&job.vm_name()).unwrap();
    let prepare = job.stage(&["prepare"]);
    prepare.expect(2);
    assert!(
        prepare.stderr.contains(&format!("cannot fetch {missing}")),
        "{}",
        prepare.stderr
    );
    job.stage(&["cleanup"]).expect(0);
    bed.assert_gone(&job, &guard);

    let (job, guard) = bed.job();
    let prepare = job.stage(&["prepare", "--timeout", "1"]);
    prepare.expect(2);
    assert!(
        prepare
            .stderr
            .contains(&format!("the job's VM {} got no address", job.vm_name())),
        "{}",
        prepare.stderr
    );
    job.stage(&["cleanup"]).expect(0);
    bed.assert_gone(&job, &guard);
    job.stage(&["cleanup"]).expect(0);
}

#[test]
fn executor_job_three_concurrent_jobs_on_a_fresh_image() {
    let bed = Bed::new("concurrent");
    let jobs: Vec<(Job, VmGuard)> = (0..3).map(|_| bed.job()).collect();
    std::thread::scope(|scope| {
        for (job, _) in &jobs {
            scope.spawn(move || {
                config_and_prepare(job);
                let build = job.run(
                    "build_script",
                    &["echo \"job in guest: $(cat /proc/cmdline)\""],
                );
                build.expect(0);
                assert!(
                    build.stdout.contains("job in guest: console=ttyS0"),
                    "{}",
                    build.stdout
                );
                job.stage(&["cleanup"]).expect(0);
            });
        }
    });
    for (job, guard) in &jobs {
        bed.assert_gone(job, guard);
    }
    let (downloads, stored) = (bed.registry.blob_downloads(), bed.registry.stored_blobs());
    assert!(
        downloads <= stored,
        "blobs were downloaded more than once: {downloads} downloads of {stored} blobs"
    );
}
