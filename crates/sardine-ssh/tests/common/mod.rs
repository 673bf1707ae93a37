//! Test harness: a real `dropbear` SSH server on 127.0.0.1 and a dedicated test user.
//!
//! Needs root (as the project's test bed does): it creates the local user `sardine-ssh-test`
//! if missing (`useradd -m`), makes bash its login shell, sets its password with `chpasswd` and installs a test key pair
//! in its `~/.ssh/authorized_keys`. The system's root account is never touched. Each
//! [`Dropbear`] listens on a fresh loopback port and is killed when dropped.

use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sardine_ssh::{Auth, Target};
use sardine_testbed::free_port;

/// Local account the tests log in as.
pub const TEST_USER: &str = "sardine-ssh-test";
/// Its password (set on every run, so the tests do not depend on earlier state).
pub const TEST_PASSWORD: &str = "sardine-ssh-test-password";

/// The prepared test account.
pub struct TestUser {
    /// Private key whose public half is in the user's `authorized_keys`.
    pub key_path: PathBuf,
}

/// Creates (once per process) the test user, its password and its key pair.
pub fn test_user() -> &'static TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(prepare_test_user)
}

fn prepare_test_user() -> TestUser {
    assert_eq!(
        capture("id", &["-u"]).trim(),
        "0",
        "these tests need root: they create the local user {TEST_USER} and run dropbear"
    );
    // nextest runs every test in a process of its own: two `useradd` at once can both "succeed"
    // (one /etc/passwd update lost), leaving a home owned by a uid nobody has, which dropbear
    // then refuses for key logins. One process at a time prepares the user.
    let lock =
        fs_err::File::create(std::env::temp_dir().join("sardine-ssh-test-user.lock")).unwrap();
    lock.file().lock().unwrap();
    if !Command::new("id")
        .arg(TEST_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        run("useradd", &["-m", TEST_USER]);
    }
    // bash, like the usual root shell of a guest: it `exec`s a single command, so a signal sent
    // over SSH reaches that command itself (dash would fork it and only the shell would die).
    run("usermod", &["-s", "/bin/bash", TEST_USER]);
    run_with_stdin(
        "chpasswd",
        &[],
        format!("{TEST_USER}:{TEST_PASSWORD}\n").as_bytes(),
    );
    let home = PathBuf::from(
        capture("getent", &["passwd", TEST_USER])
            .trim()
            .split(':')
            .nth(5)
            .unwrap(),
    );
    let ssh_dir = home.join(".ssh");
    fs_err::create_dir_all(&ssh_dir).unwrap();
    let key_path = ssh_dir.join("sardine-ssh-test-client");
    if !key_path.exists() {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "sardine-ssh test",
                "-f",
                key_path.to_str().unwrap(),
            ],
        );
    }
    let public = fs_err::read_to_string(key_path.with_extension("pub")).unwrap();
    let authorized = ssh_dir.join("authorized_keys");
    if fs_err::read_to_string(&authorized).ok().as_deref() != Some(public.as_str()) {
        fs_err::write(&authorized, &public).unwrap();
    }
    run("chown", &[&format!("{TEST_USER}:"), home.to_str().unwrap()]);
    run(
        "chown",
        &["-R", &format!("{TEST_USER}:"), ssh_dir.to_str().unwrap()],
    );
    run("chmod", &["700", ssh_dir.to_str().unwrap()]);
    run("chmod", &["600", authorized.to_str().unwrap()]);
    TestUser { key_path }
}

/// A dropbear server on 127.0.0.1, killed on drop.
pub struct Dropbear {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Dropbear {
    /// Starts dropbear on a free port and waits until it accepts connections.
    pub fn start() -> Dropbear {
        Dropbear::start_on(free_port().unwrap())
    }

    /// Starts dropbear on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> Dropbear {
        test_user();
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_key");
        run(
            "dropbearkey",
            &["-t", "ed25519", "-f", host_key.to_str().unwrap()],
        );
        let log = fs_err::File::create(dir.path().join("dropbear.log")).unwrap();
        let child = Command::new("/usr/sbin/dropbear")
            .args(["-F", "-E", "-m"])
            .arg("-p")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-r")
            .arg(&host_key)
            .arg("-P")
            .arg(dir.path().join("dropbear.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.into_file())
            .spawn()
            .unwrap();
        let server = Dropbear { child, port, dir };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&self) {
        let start = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dropbear did not listen on port {} within 10 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// dropbear's own log (stderr).
    pub fn log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("dropbear.log")).unwrap_or_default()
    }

    /// Target for the test user with password authentication.
    pub fn password_target(&self) -> Target {
        target(self.port, vec![Auth::Password(TEST_PASSWORD.to_owned())])
    }

    /// Target for the test user with key authentication.
    pub fn key_target(&self) -> Target {
        let key = &test_user().key_path;
        target(
            self.port,
            vec![Auth::KeyFile {
                path: key.clone(),
                passphrase: None,
            }],
        )
    }
}

impl Drop for Dropbear {
    fn drop(&mut self) {
        // Only the listener we started; sessions it forked end when their clients disconnect.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Target for the test user on 127.0.0.1:`port` with the given methods.
pub fn target(port: u16, auth: Vec<Auth>) -> Target {
    Target {
        host: "127.0.0.1".to_owned(),
        port,
        user: TEST_USER.to_owned(),
        auth,
        host_key: None,
    }
}

/// PIDs of the test user's processes whose full command line matches `pattern` (pgrep -f).
pub fn test_user_processes(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-u", TEST_USER, "-f", pattern])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed: {out:?}");
}

fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    assert!(child.wait().unwrap().success(), "{program} {args:?} failed");
}

fn capture(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}
