//! Fault injection: `sarde export` and `sarde import` killed with SIGKILL at several points and
//! re-run, concurrent imports of one image, a lock left by a killed process, and a VM directory
//! too small for the image. After every kill the store must be consistent (every tag points to
//! a manifest whose blobs are all there, every blob's content matches its name), and the re-run
//! must produce the complete, correct result. Runs against the test bed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sardine_testbed::{file_digest, noise_file};

use crate::common::{expect_ok, output_of};
use crate::hostile_support::{DOMAIN_TYPE, Env, IMAGE, Image, Layer, REPO, domain_xml};

const MIB: u64 = 1 << 20;

/// A source VM for export: a raw disk of `size` random bytes and a domain XML file naming it.
struct Source {
    xml: PathBuf,
    disk: PathBuf,
    digest: String,
}

fn source(env: &Env, size: u64) -> Source {
    let dir = env.path().join("src");
    fs_err::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    noise_file(&disk, size, 42);
    let xml = dir.join("vm.xml");
    fs_err::write(&xml, domain_xml("disk.img", "raw", "")).unwrap();
    let digest = file_digest(&disk);
    Source { xml, disk, digest }
}

fn export_command(env: &Env, source: &Source) -> Command {
    let xml = source.xml.to_string_lossy().into_owned();
    env.command(&[
        "-q",
        "export",
        "hostile-src",
        IMAGE,
        "--libvirtconfig",
        &xml,
        "--chunksize",
        "4MiB",
    ])
}

fn import_command(env: &Env, name: Option<&str>) -> Command {
    let vmdir = env.vmdir().to_string_lossy().into_owned();
    let mut args = vec!["-q", "import", IMAGE, "-o", &vmdir];
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    env.command(&args)
}

/// Runs `command` to completion; fails the test unless it succeeds; returns stdout, trimmed.
fn succeed(mut command: Command) -> String {
    let output = output_of(&mut command);
    expect_ok(&output, command.get_args().collect::<Vec<_>>())
        .trim()
        .to_owned()
}

/// Starts `command`, waits `delay`, kills it with SIGKILL; whether it was still running.
fn kill_after(mut command: Command, delay: Duration) -> bool {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    running
}

/// The kill points: from "barely started" to "nearly done".
const DELAYS_MS: [u64; 6] = [15, 60, 150, 350, 700, 1200];

/// Checks the store: every blob's content matches its name (no half-written blob under a valid
/// name), and every `index.json` entry points to a manifest whose config and layers are there.
fn check_store(ocidir: &Path) {
    for blobs in [
        ocidir.join(REPO).join("blobs/sha256"),
        ocidir.join(".sardine/blobs/sha256"),
    ] {
        let Ok(entries) = fs_err::read_dir(&blobs) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                file_digest(&path),
                format!("sha256:{name}"),
                "half-written blob {}",
                path.display()
            );
        }
    }
    let index_path = ocidir.join(REPO).join("index.json");
    let Ok(index) = fs_err::read(&index_path) else {
        return;
    };
    let index: serde_json::Value =
        serde_json::from_slice(&index).unwrap_or_else(|e| panic!("index.json is damaged: {e}"));
    let blob = |digest: &serde_json::Value| {
        ocidir
            .join(REPO)
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    for entry in index["manifests"].as_array().unwrap() {
        let manifest_path = blob(&entry["digest"]);
        let manifest = fs_err::read(&manifest_path)
            .unwrap_or_else(|e| panic!("a tag points to a missing manifest: {e}"));
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        for descriptor in
            std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap())
        {
            let size = fs_err::metadata(blob(&descriptor["digest"]))
                .unwrap_or_else(|e| panic!("a manifest's blob is missing: {e}"))
                .len();
            assert_eq!(Some(size), descriptor["size"].as_u64());
        }
    }
}

/// Checks that VM `name` is defined with exactly the source disk and no staging directory is left.
fn check_imported(env: &Env, name: &str, source: &Source) {
    assert!(
        crate::hostile_support::domains().contains(name),
        "{name} is not defined"
    );
    assert_eq!(
        file_digest(&env.vmdir().join(name).join("disk.img")),
        source.digest
    );
    assert!(!env.vmdir().join(format!(".{name}.importing")).exists());
}

#[test]
fn hostile_kill_export_at_several_points_then_rerun() {
    let env = Env::new();
    let source = source(&env, 200 * MIB);
    let mut killed_while_running = 0;
    for delay in DELAYS_MS {
        killed_while_running += usize::from(kill_after(
            export_command(&env, &source),
            Duration::from_millis(delay),
        ));
        check_store(&env.ocidir());
    }
    assert!(
        killed_while_running >= 3,
        "exports finished too fast to be interrupted"
    );
    succeed(export_command(&env, &source));
    check_store(&env.ocidir());

    let name = sardine_testbed::unique_name("hostile-export-killed");
    let _guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    assert_eq!(succeed(import_command(&env, Some(&name))), name);
    check_imported(&env, &name, &source);
    assert_eq!(file_digest(&source.disk), source.digest);
}

#[test]
fn hostile_kill_import_at_several_points_then_rerun() {
    let env = Env::new();
    let source = source(&env, 200 * MIB);
    succeed(export_command(&env, &source));
    let name = sardine_testbed::unique_name("hostile-import-killed");
    let guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    let mut killed_while_running = 0;
    for delay in DELAYS_MS {
        killed_while_running += usize::from(kill_after(
            import_command(&env, Some(&name)),
            Duration::from_millis(delay),
        ));
        // Either nothing is defined, or the VM is complete: never a VM with missing disks.
        if guard.exists() {
            check_imported(&env, &name, &source);
        }
        check_store(&env.ocidir());
    }
    assert!(
        killed_while_running >= 3,
        "imports finished too fast to be interrupted"
    );
    assert_eq!(succeed(import_command(&env, Some(&name))), name);
    check_imported(&env, &name, &source);
    let vm_dirs: Vec<_> = fs_err::read_dir(env.vmdir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".lock"))
        .collect();
    assert_eq!(vm_dirs, [std::ffi::OsString::from(&name)]);
}

#[test]
fn hostile_three_concurrent_imports_define_one_vm() {
    let env = Env::new();
    let source = source(&env, 64 * MIB);
    succeed(export_command(&env, &source));
    let children: Vec<Child> = (0..3)
        .map(|_| {
            import_command(&env, None)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let names: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .collect();
    let _guard = sardine_testbed::VmGuard::adopt(&names[0]).unwrap();
    for output in &outputs {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(names[0].starts_with("sha256:"), "{names:?}");
    assert!(names.iter().all(|n| *n == names[0]), "{names:?}");
    check_imported(&env, &names[0], &source);
    let dirs = fs_err::read_dir(env.vmdir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(dirs, 1);
}

#[test]
fn hostile_lock_of_a_killed_import_does_not_block() {
    let env = Env::new();
    let source = source(&env, 200 * MIB);
    succeed(export_command(&env, &source));
    let name = sardine_testbed::unique_name("hostile-lock");
    let _guard = sardine_testbed::VmGuard::adopt(&name).unwrap();

    // Kill the import while it unpacks, that is while it holds the VM's lock.
    let mut child = import_command(&env, Some(&name))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging = env.vmdir().join(format!(".{name}.importing"));
    let start = Instant::now();
    while !staging.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the import finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(env.vmdir().join(format!(".{name}.lock")).exists());

    let mut rerun = import_command(&env, Some(&name))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while rerun.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = rerun.kill();
            panic!("the re-run is blocked by the killed import's lock");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = rerun.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_imported(&env, &name, &source);
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs_err::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (the tests run as root)",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn hostile_disk_full_is_refused_early() {
    let env = Env::new();
    let source = source(&env, 32 * MIB);
    succeed(export_command(&env, &source));
    let small = Tmpfs::mount(&env.path().join("small"), "20m");
    let vmdir = small.0.join("vms");
    let name = sardine_testbed::unique_name("hostile-full");
    let guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    let vmdir_arg = vmdir.to_string_lossy().into_owned();
    let output = env.run(&["import", IMAGE, "--name", &name, "-o", &vmdir_arg]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("not enough free space"), "{stderr}");
    assert!(
        stderr.contains(&vmdir_arg),
        "the error does not name {vmdir_arg}: {stderr}"
    );
    assert!(
        stderr.contains(&(32 * MIB).to_string()),
        "the error does not say how much is needed: {stderr}"
    );
    assert!(!guard.exists());
    let left: Vec<_> = fs_err::read_dir(&vmdir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from(format!(".{name}.lock"))]);
}

#[test]
fn prune_leaves_a_base_vm_alone_while_it_is_being_imported_or_cloned() {
    // A job between the import of its base VM and the definition of its clone holds the store's
    // base VM lock shared (as sardine_vm's `Imported::in_use` does); prune, which would remove
    // the now orphaned base VM, leaves it until nobody holds the lock.
    // Prune judges base VMs, named after their image ID: this image's is unique.
    let env = Env::new();
    let unique = sardine_testbed::unique_name("faults-prune-lock");
    let xml = domain_xml("disk.img", "raw", "").replace(
        "<name>hostile</name>",
        &format!("<name>hostile</name><description>{unique}</description>"),
    );
    let mut image = Image::ordinary();
    image.layers[0] = Layer::new(DOMAIN_TYPE, xml.into_bytes());
    image.write(&env.ocidir());
    let vmdir = env.vmdir().to_string_lossy().into_owned();
    let name = env.ok(&["import", IMAGE, "-o", &vmdir]);
    let guard = sardine_testbed::VmGuard::adopt(&name).unwrap();
    env.ok(&["rm", "--image", IMAGE]);

    let lock = fs_err::File::create(env.ocidir().join(".sardine/base-vms.lock")).unwrap();
    lock.file().lock_shared().unwrap();
    let text = env.ok(&["prune", "--older-than", "0s"]);
    assert!(!text.contains(&format!("removed VM {name}")), "{text}");
    assert!(guard.exists(), "prune removed a VM that was being imported");

    lock.file().unlock().unwrap();
    let text = env.ok(&["prune", "--older-than", "0s"]);
    assert!(text.contains(&format!("removed VM {name}")), "{text}");
    assert!(!guard.exists());
}
