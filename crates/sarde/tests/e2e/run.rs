//! `sarde run` against a real registry, real libvirt and booted tiny guests: a command's
//! output and status, shares, forwarded ports, kernel overrides, SIGTERM in every phase, and
//! concurrent runs of an image that is not fetched yet, and an interactive shell when sarde
//! runs on a terminal (script(1) gives it one).
//!
//! Every test name has `guest` in it: they boot guests (the nextest group of two at a time).

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sardine_testbed::{Bait, Registry, RegistryAuth, free_port, guest_image};

use crate::common::{Workdir, code, expect_code, output_of, publish_tiny, text};

/// How long a run may take in these tests (boot under TCG included).
const PATIENCE: Duration = Duration::from_secs(240);

/// `sarde run` in a store of its own (`store`), with the test's VM directory.
fn run_command(work: &Workdir, store: &Path, args: &[&str]) -> Command {
    let vmdir = work.vmdir();
    let mut full = vec!["run", "--vmdir", vmdir.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut command = work.command_in(store, &full);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// The names of all domains whose name starts with `prefix`.
fn domains(prefix: &str) -> Vec<String> {
    let listed = output_of(Command::new("virsh").args([
        "-c",
        &sardine_testbed::libvirt_uri(),
        "list",
        "--all",
        "--name",
    ]));
    text(&listed.stdout)
        .lines()
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// What is in the VM directory besides base VMs (`sha256:…`) and the lock files of imports
/// and clones (a bounded set: `.clone-xx.lock` stripes by name).
fn leftovers(work: &Workdir) -> Vec<String> {
    fs_err::read_dir(work.vmdir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            !name.starts_with("sha256:")
                && !name.starts_with(".sha256:")
                && !name.starts_with(".clone-")
        })
        .collect()
}

/// Asserts that the run named `name` left no domain and no file.
fn assert_nothing_left(work: &Workdir, name: &str) {
    assert_eq!(
        domains(name),
        Vec::<String>::new(),
        "domains left by {name}"
    );
    let left: Vec<_> = leftovers(work)
        .into_iter()
        .filter(|file| file.contains(name))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "files left by {name}");
}

/// A child's stderr, line by line, on a channel (and all of it at the end).
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits until a line with `needle` arrives (returns the lines seen so far).
fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} came; saw:\n{}", seen.join("\n"));
}

fn terminate(child: &Child) {
    let killed = output_of(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    assert!(killed.status.success(), "kill: {}", text(&killed.stderr));
}

/// Waits for the child to exit and returns its status code.
fn exit_code_of(child: &mut Child) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "sarde run did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A directory QEMU's virtiofsd may read and write.
fn shared_dir(work: &Workdir) -> PathBuf {
    let dir = work.path().join("share");
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Logs in with the system's OpenSSH client through `port` on the loopback, with the tiny
/// guest's password (given by an askpass script), and runs `command`.
fn plain_ssh(work: &Workdir, port: u16, command: &str) -> Output {
    let guest = guest_image();
    let askpass = work.path().join("askpass");
    fs_err::write(&askpass, format!("#!/bin/sh\necho '{}'\n", guest.password)).unwrap();
    fs_err::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    output_of(
        Command::new("ssh")
            .args(["-p", &port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "BatchMode=no", "-o", "ConnectTimeout=30"])
            .arg(format!("{}@127.0.0.1", guest.user))
            .arg(command)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null()),
    )
}

#[test]
fn run_guest_command_gets_output_status_mounts_ports_and_kernel_overrides() {
    let work = Workdir::new("run");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let image = format!("{}/run/tiny:1", registry.host());
    let _base = publish_tiny(&work, &image, true);
    // A store that does not have the image: run fetches it (pull policy "missing").
    let store = work.other_store("fresh");
    let share = shared_dir(&work);
    fs_err::write(share.join("in.txt"), "from the host\n").unwrap();
    let extra = work.path().join("extra.raw");
    fs_err::File::create(&extra)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let console = work.path().join("console.log");
    let port = free_port().unwrap();
    let guest = guest_image();
    let (kernel, initrd) = (guest.kernel(), guest.initrd());
    let name = sardine_testbed::unique_name("run");
    let mount = format!("{}:/mnt/host", share.display());
    let publish = format!("127.0.0.1:{port}:22");
    let script = "cat /data/README; tr ' ' '\\n' < /proc/cmdline | grep sarde.test; \
        cat /mnt/host/in.txt; echo from the guest > /mnt/host/out.txt; \
        [ -b /dev/vdb ] && echo extra disk; printf 'caf\\303\\251 \\000\\377\\n'; \
        echo to stderr >&2; \
        while [ ! -e /mnt/host/done ]; do sleep 0.2; done; exit 7";
    let mut child = run_command(
        &work,
        &store,
        &[
            &image,
            "--name",
            &name,
            "--mount",
            &mount,
            "--disk",
            extra.to_str().unwrap(),
            "-p",
            &publish,
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--cmdline",
            "console=ttyS0 sarde.test=overridden",
            "--console-log",
            console.to_str().unwrap(),
            "--",
            script,
        ],
    )
    .spawn()
    .unwrap();
    let out = share.join("out.txt");
    let deadline = Instant::now() + PATIENCE;
    while !out.exists() {
        assert!(
            Instant::now() < deadline,
            "the guest never wrote {}",
            out.display()
        );
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("sarde run ended early ({status}):\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(fs_err::read_to_string(&out).unwrap(), "from the guest\n");
    let through = plain_ssh(&work, port, "cat /data/README");
    expect_code(&through, 0, "ssh through the published port");
    assert!(text(&through.stdout).contains("sardinecake test guest"));
    fs_err::write(share.join("done"), "").unwrap();
    let output = child.wait_with_output().unwrap();
    expect_code(&output, 7, "sarde run ... exit 7");
    let expected = "sardinecake test guest data disk\nsarde.test=overridden\nfrom the host\n\
        extra disk\ncaf\u{e9} ";
    let mut bytes = expected.as_bytes().to_vec();
    bytes.extend_from_slice(b"\0\xff\n");
    assert_eq!(output.stdout, bytes, "stdout: {:?}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("to stderr"), "{stderr}");
    assert!(
        fs_err::read_to_string(&console)
            .unwrap()
            .contains("sardine: ready")
    );
    assert_nothing_left(&work, &name);

    // A read-only share cannot be written; the status is the command's.
    let readonly = format!("{}:/mnt/host:ro", share.display());
    let name = sardine_testbed::unique_name("run-ro");
    let script = "cat /mnt/host/in.txt && echo x > /mnt/host/ro.txt";
    let args = [
        &image, "--pull", "never", "--name", &name, "--mount", &readonly, "--", script,
    ];
    let refused = run_command(&work, &store, &args).output().unwrap();
    assert_eq!(text(&refused.stdout), "from the host\n");
    assert_ne!(code(&refused), 0, "{}", text(&refused.stderr));
    assert!(!share.join("ro.txt").exists());
    assert_nothing_left(&work, &name);
}

#[test]
fn run_guest_sigterm_in_every_phase_leaves_nothing() {
    let work = Workdir::new("run-term");
    let image = "run/term:1";
    let _base = publish_tiny(&work, image, false);
    let store = work.ocidir();

    // Fetching: a registry that never answers.
    let bait = Bait::new().unwrap();
    let stalled = format!("127.0.0.1:{}/run/stalled:1", bait.port());
    let name = sardine_testbed::unique_name("term-fetch");
    let mut child = run_command(&work, &store, &[&stalled, "--name", &name, "--", "true"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while bait.connections() == 0 {
        assert!(Instant::now() < deadline, "the fetch never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    terminate(&child);
    assert_eq!(exit_code_of(&mut child), 143, "SIGTERM while fetching");
    assert_nothing_left(&work, &name);

    // Booting (the domain runs, no address yet), logging in, and running.
    for (phase, needle) in [
        ("boot", None),
        ("login", Some("has the address")),
        ("command", Some("ready")),
    ] {
        let name = sardine_testbed::unique_name(&format!("term-{phase}"));
        let mut child = run_command(
            &work,
            &store,
            &[image, "--name", &name, "--", "echo ready >&2; sleep 600"],
        )
        .spawn()
        .unwrap();
        let lines = stderr_lines(&mut child);
        match needle {
            Some(needle) => {
                wait_for_line(&lines, needle);
            }
            None => {
                let deadline = Instant::now() + PATIENCE;
                while domains(&name).is_empty() {
                    assert!(Instant::now() < deadline, "{name} never appeared");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        terminate(&child);
        assert_eq!(exit_code_of(&mut child), 143, "SIGTERM while in {phase}");
        assert_nothing_left(&work, &name);
    }
}

#[test]
fn run_guest_three_at_once_fetch_and_import_once() {
    let work = Workdir::new("run-many");
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let image = format!("{}/run/many:1", registry.host());
    let _base = publish_tiny(&work, &image, true);
    let pushed_downloads = registry.blob_downloads();
    let store = work.other_store("fresh");
    let names: Vec<String> = (0..3)
        .map(|i| sardine_testbed::unique_name(&format!("many-{i}")))
        .collect();
    let children: Vec<Child> = names
        .iter()
        .map(|name| {
            run_command(
                &work,
                &store,
                &[&image, "--name", name, "--", "cat /data/README"],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for (child, name) in children.into_iter().zip(&names) {
        let output = child.wait_with_output().unwrap();
        assert_nothing_left(&work, name);
        expect_code(&output, 0, "a concurrent sarde run");
        assert_eq!(text(&output.stdout), "sardinecake test guest data disk\n");
    }
    let layers = fs_err::read_dir(store.join(".sardine/blobs/sha256"))
        .unwrap()
        .count();
    let downloads = registry.blob_downloads() - pushed_downloads;
    assert!(
        downloads <= layers,
        "{downloads} blob downloads for {layers} blobs: the image was fetched more than once"
    );
    let bases: Vec<_> = fs_err::read_dir(work.vmdir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("sha256:"))
        .collect();
    assert_eq!(bases.len(), 1, "one import: {bases:?}");
    assert_eq!(leftovers(&work), Vec::<String>::new());
}

#[test]
fn run_guest_without_command_on_a_terminal_is_an_interactive_shell() {
    let work = Workdir::new("run-pty");
    let image = "run/pty:1";
    let _base = publish_tiny(&work, image, false);
    let name = sardine_testbed::unique_name("pty");
    let (vmdir, ocidir) = (work.vmdir(), work.ocidir());
    let sarde = [
        env!("CARGO_BIN_EXE_sarde"),
        "--ocidir",
        ocidir.to_str().unwrap(),
        "--connect",
        &sardine_testbed::libvirt_uri(),
        "run",
        image,
        "--vmdir",
        vmdir.to_str().unwrap(),
        "--name",
        &name,
    ];
    // script(1) gives sarde a terminal of 100x30; the test types into it through a pipe.
    let inner = format!("stty cols 100 rows 30; exec {}", sarde.join(" "));
    let mut script = Command::new("script");
    script.args(["-qefc", &inner, "/dev/null"]);
    work.isolate(&mut script);
    let mut child = script
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (chunks, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || chunks.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !text(&seen).contains("built-in shell") {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => panic!("no shell came up; the terminal showed:\n{}", text(&seen)),
        }
    }
    std::io::Write::write_all(&mut stdin, b"echo tty-$((40+2)); stty size; tty; exit 3\r").unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    assert_eq!(exit_code_of(&mut child), 3);
    drop(stdin);
    while let Ok(chunk) = received.recv_timeout(Duration::from_secs(5)) {
        seen.extend(chunk);
    }
    let shown = text(&seen);
    assert!(shown.contains("tty-42"), "{shown}");
    assert!(
        shown.contains("30 100"),
        "the remote terminal has our size: {shown}"
    );
    assert!(shown.contains("/dev/pts/"), "{shown}");
    assert_nothing_left(&work, &name);
}
