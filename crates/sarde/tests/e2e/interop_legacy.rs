//! Interoperability with the Python sardinecake 0.4.2, both ways, with real VMs.
//!
//! `scripts/setup-testbed` installs 0.4.2 into a venv at [`LEGACY_SARDE`]'s directory. Each
//! test boots the tiny guest, writes a marker (and a few MiB of noise, so that the gzip streams
//! span several pieces), exports the VM with one tool, imports it with the other, checks the
//! files byte for byte and reads the marker back in the imported VM. They also check that each
//! tool's `list` reads the other's store.
//!
//! Run inside the test bed's namespace (`scripts/test`), like the other end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sardine_testbed::{TestVm, VmGuard, VmOptions, file_digest, unique_name};

use crate::common::{SHUTDOWN, Workdir, expect_ok, output_of, text};

/// The `sarde` of sardinecake 0.4.2, as `scripts/setup-testbed` installs it.
const LEGACY_SARDE: &str = "/opt/sardinecake-0.4.2/bin/sarde";

/// The keys of one `sarde list --format json` entry, in 0.4.2's order.
const LIST_KEYS: [&str; 6] = ["source", "name", "tag", "digest", "id", "state"];

/// Which `sarde` to run.
#[derive(Clone, Copy, Debug)]
enum Tool {
    Ours,
    Legacy,
}

/// A test's directory ([`Workdir`]: stores and VM directories below it) and a way to run
/// either tool in it.
struct Env {
    work: Workdir,
}

impl Env {
    fn new() -> Env {
        assert!(
            Path::new(LEGACY_SARDE).is_file(),
            "{LEGACY_SARDE} is missing: the interoperability tests need sardinecake 0.4.2.\n\
             hint: run scripts/setup-testbed as root (it installs it into a venv)"
        );
        Env {
            work: Workdir::new("interop-test"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Runs `tool` with `args`, the store `ocidir`, the test bed's libvirt, no configuration
    /// and the test's own credentials.
    fn run(&self, tool: Tool, ocidir: &Path, args: &[&str]) -> Output {
        let mut command = match tool {
            Tool::Ours => self.work.command_in(ocidir, args),
            Tool::Legacy => {
                // 0.4.2 takes --connect before the subcommand only, --ocidir after it only.
                let mut command = Command::new(LEGACY_SARDE);
                command
                    .arg("--connect")
                    .arg(sardine_testbed::libvirt_uri())
                    .args(args)
                    .arg("--ocidir")
                    .arg(ocidir);
                self.work.isolate(&mut command);
                command
            }
        };
        output_of(command.current_dir(self.work.path()))
    }

    /// Like [`Env::run`], but fails the test unless the command succeeds; returns stdout.
    fn ok(&self, tool: Tool, ocidir: &Path, args: &[&str]) -> String {
        let output = self.run(tool, ocidir, args);
        let stdout = expect_ok(&output, (tool, args));
        let stderr = text(&output.stderr);
        assert!(
            !stderr.contains("Traceback"),
            "{tool:?} sarde {args:?} crashed:\n{stderr}"
        );
        stdout
    }
}

/// `import IMAGE -n NAME -o VMDIR`, then `extra`.
fn import_args<'a>(
    image: &'a str,
    name: &'a str,
    vmdir: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["import", image, "-n", name, "-o", vmdir];
    args.extend_from_slice(extra);
    args
}

/// A VM with a 2-image backing chain whose data disk holds `marker` in `/data/marker`, shut off.
fn prepared_vm(label: &str, marker: &str) -> TestVm {
    let vm = TestVm::create(&VmOptions {
        label: label.into(),
        backing_chain: true,
        ..VmOptions::default()
    })
    .unwrap();
    vm.start().unwrap();
    let script = format!(
        "echo {marker} > /data/marker && dd if=/dev/urandom of=/data/noise bs=1M count=3 2>/dev/null && sync"
    );
    let output = vm.ssh(&script).unwrap();
    assert_eq!(
        output.code,
        Some(0),
        "{script}: {output:?}\nconsole:\n{}",
        vm.console_log()
    );
    vm.shutdown(SHUTDOWN).unwrap();
    vm
}

/// Asserts that `copy/<name>` has the bytes of `original/<name>`, for each name.
fn assert_same_files(original: &Path, copy: &Path, names: &[&str]) {
    for name in names {
        let (a, b) = (original.join(name), copy.join(name));
        assert!(b.is_file(), "{} is missing", b.display());
        assert_eq!(
            file_digest(&a),
            file_digest(&b),
            "{} differs from {}",
            b.display(),
            a.display()
        );
    }
}

/// Boots an imported VM and returns what `cat /data/marker` prints in it.
fn marker_in(guard: &VmGuard) -> String {
    guard.start().unwrap();
    let output = guard.ssh("cat /data/marker").unwrap();
    assert_eq!(output.code, Some(0), "cat /data/marker: {output:?}");
    guard.shutdown(SHUTDOWN).unwrap();
    output.stdout.trim().to_owned()
}

/// `sarde list --format json` of `tool`, as objects whose keys are checked against 0.4.2's
/// (and reduced to them, so that both tools' listings compare equal).
fn list_json(
    env: &Env,
    tool: Tool,
    ocidir: &Path,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let printed = env.ok(tool, ocidir, &["list", "--format", "json"]);
    let entries: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&printed)
        .unwrap_or_else(|e| panic!("{tool:?} list printed no JSON list ({e}):\n{printed}"));
    // 0.4.2's keys come first, in its order; sarde adds more (size, last_used) after them.
    entries
        .into_iter()
        .map(|mut entry| {
            let keys: Vec<&str> = entry.keys().map(String::as_str).collect();
            assert!(
                keys.len() >= LIST_KEYS.len(),
                "{tool:?} list: keys of {entry:?}"
            );
            assert_eq!(
                keys[..LIST_KEYS.len()],
                LIST_KEYS,
                "{tool:?} list: keys of {entry:?}"
            );
            entry.retain(|key, _| LIST_KEYS.contains(&key.as_str()));
            entry
        })
        .collect()
}

/// The media types of the layers of the last image in the repository `repo_dir`.
fn layer_media_types(repo_dir: &Path) -> Vec<String> {
    let read = |path: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&fs_err::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let index = read(repo_dir.join("index.json"));
    let digest = index["manifests"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|d| d["digest"].as_str())
        .unwrap()
        .to_owned();
    let manifest = read(
        repo_dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    );
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Asserts that an image is in 0.4.2's format with files cut into several pieces.
fn assert_legacy_pieces(repo_dir: &Path) {
    let types = layer_media_types(repo_dir);
    assert_eq!(
        types.first().map(String::as_str),
        Some("application/vnd.libvirt.domain.config+xml"),
        "{types:?}"
    );
    assert!(
        types
            .iter()
            .any(|t| t.starts_with("application/x-qemu-disk+gzip;chunk=")),
        "no disk spans several pieces: {types:?}"
    );
}

/// Asserts that both tools print the same `sarde list` table for `ocidir`; returns it.
fn assert_same_text_list(env: &Env, ocidir: &Path) -> String {
    let legacy = env.ok(Tool::Legacy, ocidir, &["list"]);
    let ours = env.ok(Tool::Ours, ocidir, &["list"]);
    assert_eq!(ours, legacy, "sarde list differs from 0.4.2's");
    ours
}

/// The domain XML libvirt holds for `name`.
fn dumpxml(name: &str) -> String {
    let output = Command::new("virsh")
        .args(["-q", "-c", &sardine_testbed::libvirt_uri(), "dumpxml", name])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "virsh dumpxml {name}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Redefines a domain from `xml`.
fn redefine(env: &Env, xml: &str) {
    let file = env.path("redefine.xml");
    fs_err::write(&file, xml).unwrap();
    let output = Command::new("virsh")
        .args(["-q", "-c", &sardine_testbed::libvirt_uri(), "define"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "virsh define: {}",
        text(&output.stderr)
    );
}

/// 0.4.2 exports a VM; our sarde lists and imports it, and the VM boots with the data.
#[test]
fn interop_roundtrip_from_sardinecake_0_4_2() {
    let env = Env::new();
    let vm = prepared_vm("from-legacy", "written-before-0.4.2-export");
    let store = env.path("oci-legacy");
    let image = "interop/from-legacy:1";

    // 0.4.2 prints the config digest, bare hex.
    let printed = env.ok(
        Tool::Legacy,
        &store,
        &["export", vm.name(), image, "--chunksize", "1MiB"],
    );
    let image_id = format!("sha256:{}", printed.trim());
    assert_legacy_pieces(&store.join("interop/from-legacy"));

    // Both tools list 0.4.2's store the same way (state: no VM is named after the image ID).
    let ours = list_json(&env, Tool::Ours, &store);
    assert_eq!(ours, list_json(&env, Tool::Legacy, &store));
    assert_eq!(ours.len(), 1, "{ours:?}");
    let entry = &ours[0];
    assert_eq!(
        (
            entry["source"].as_str(),
            entry["name"].as_str(),
            entry["tag"].as_str()
        ),
        (Some("oci"), Some("interop/from-legacy"), Some("1"))
    );
    assert_eq!(entry["id"].as_str(), Some(image_id.as_str()));
    assert!(entry["state"].is_null(), "{entry:?}");
    assert_same_text_list(&env, &store);

    // 0.4.2 exports disks only: the domain boots the exporting host's kernel and initrd by
    // absolute path, which our policy refuses unless told to trust the image.
    let name = unique_name("from-legacy");
    let guard = VmGuard::adopt(&name).unwrap();
    let vmdir = env.path("vms");
    let vmdir_arg = vmdir.to_str().unwrap();
    let refused = env.run(
        Tool::Ours,
        &store,
        &import_args(image, &name, vmdir_arg, &[]),
    );
    let stderr = text(&refused.stderr);
    assert!(
        !refused.status.success(),
        "import of host kernel paths succeeded:\n{stderr}"
    );
    assert!(
        stderr.contains("/domain/os/kernel") && stderr.contains("--allow-unsafe-xml"),
        "{stderr}"
    );
    assert!(!guard.exists(), "a refused import defined {name}");
    // The exporting host's live state (emulator path, pty paths, ...) is removed by import;
    // the test VM's serial port writes to a host file, which is refused by name too.
    assert!(!stderr.contains("emulator"), "{stderr}");
    assert!(stderr.contains("/domain/devices/serial"), "{stderr}");

    // Trusted: --allow-unsafe-xml defines 0.4.2's XML as it is, apart from the name, UUID,
    // MACs and the paths of the files the image holds. So the kernel and initrd are still
    // those in the test VM's directory (which outlives this import), and the serial port still
    // writes to that VM's console.log.
    let printed = env.ok(
        Tool::Ours,
        &store,
        &import_args(image, &name, vmdir_arg, &["--allow-unsafe-xml"]),
    );
    assert_eq!(printed.trim(), name);
    assert!(guard.exists(), "import did not define {name}");
    assert_same_files(vm.dir(), &vmdir.join(&name), &["base.qcow2", "data.qcow2"]);
    let xml = dumpxml(&name);
    assert!(
        xml.contains(&format!(
            "<kernel>{}</kernel>",
            vm.dir().join("vmlinuz").display()
        )),
        "{xml}"
    );
    let data = vmdir.join(&name).join("data.qcow2");
    assert!(
        xml.contains(&format!("<source file='{}'/>", data.display())),
        "{xml}"
    );

    assert_eq!(marker_in(&guard), "written-before-0.4.2-export");
}

/// Our sarde exports a VM in the legacy format; 0.4.2 lists and imports it, and the VM boots
/// with the data.
#[test]
fn interop_roundtrip_to_sardinecake_0_4_2() {
    let env = Env::new();
    let vm = prepared_vm("to-legacy", "written-before-our-export");
    let store = env.path("oci-ours");
    let image = "interop/to-legacy:1";
    env.ok(
        Tool::Ours,
        &store,
        &[
            "export",
            vm.name(),
            image,
            "--disk-format",
            "legacy",
            "--chunksize",
            "1MiB",
        ],
    );

    // 0.4.2 reads our store (and agrees with us about it).
    let legacy = list_json(&env, Tool::Legacy, &store);
    assert_eq!(legacy, list_json(&env, Tool::Ours, &store));
    assert_eq!(legacy.len(), 1, "{legacy:?}");
    assert_eq!(legacy[0]["tag"].as_str(), Some("1"));
    let listed = assert_same_text_list(&env, &store);
    assert!(listed.contains("interop/to-legacy:1"), "{listed}");

    // A trailing slash: 0.4.2 puts the files into <vmdir>/<name>/.
    let name = unique_name("to-legacy");
    let guard = VmGuard::adopt(&name).unwrap();
    let vmdir = env.path("vms");
    let vmdir_arg = format!("{}/", vmdir.display());
    let printed = env.ok(
        Tool::Legacy,
        &store,
        &import_args(image, &name, &vmdir_arg, &[]),
    );
    assert_eq!(printed.trim(), name);
    assert!(guard.exists(), "0.4.2 did not define {name}");
    let files = vmdir.join(&name);
    assert_same_files(
        vm.dir(),
        &files,
        &["base.qcow2", "data.qcow2", "vmlinuz", "initrd.img"],
    );

    // 0.4.2 joins only disk paths to the VM directory and leaves our relative kernel and initrd
    // names as they are, so QEMU (whose working directory is /) cannot find them: the VM it
    // defined does not start. That is 0.4.2's doing; point them at the files it extracted, as
    // its user would, and check that the disks it wrote boot with the data.
    let xml = dumpxml(&name);
    assert!(
        xml.contains(&format!(
            "<source file='{}'/>",
            files.join("data.qcow2").display()
        )),
        "{xml}"
    );
    let mut fixed = xml.clone();
    for file in ["vmlinuz", "initrd.img"] {
        let absolute = files.join(file).display().to_string();
        fixed = fixed.replace(&format!(">{file}<"), &format!(">{absolute}<"));
    }
    assert_ne!(
        fixed, xml,
        "0.4.2 now rewrites kernel paths: drop this workaround\n{xml}"
    );
    redefine(&env, &fixed);

    assert_eq!(marker_in(&guard), "written-before-our-export");
}

/// Both tools list an empty (missing) store alike: `[]`, and a table with the header only.
#[test]
fn interop_list_of_an_empty_store() {
    let env = Env::new();
    let empty = env.path("empty");
    assert!(list_json(&env, Tool::Ours, &empty).is_empty());
    assert!(list_json(&env, Tool::Legacy, &empty).is_empty());
    assert_same_text_list(&env, &empty);
}
