//! sardine-ssh against a real SSH server (dropbear on 127.0.0.1): logins, retries, exit
//! statuses, binary-safe streaming and cancellation. Needs root, see `common`.

mod common;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{Dropbear, TEST_PASSWORD, TEST_USER, target, test_user, test_user_processes};
use sardine_ssh::{Auth, ExitStatus, Session, SshError};
use sardine_testbed::free_port;
use tokio::io::AsyncWrite;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn login(server: &Dropbear) -> Session {
    Session::connect(&server.password_target(), CONNECT_TIMEOUT)
        .await
        .unwrap_or_else(|err| panic!("login failed: {err:?}\ndropbear log:\n{}", server.log()))
}

/// Bounds a test step so a bug shows up as a failure, not a hang.
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .expect("test step took too long")
}

#[tokio::test]
async fn password_login_runs_echo() {
    let server = Dropbear::start();
    let session = login(&server).await;
    let out = session.output("echo hello; whoami").await.unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("hello\n{TEST_USER}\n")
    );
    assert!(out.stderr.is_empty());
    session.close().await.unwrap();
}

#[tokio::test]
async fn key_login_works() {
    let server = Dropbear::start();
    let session = Session::connect(&server.key_target(), CONNECT_TIMEOUT)
        .await
        .unwrap();
    let out = session.output("echo key").await.unwrap();
    assert_eq!(out.stdout, b"key\n");
}

#[tokio::test]
async fn auth_methods_are_tried_in_order_until_one_works() {
    let server = Dropbear::start();
    let auth = vec![
        Auth::Password("wrong".to_owned()),
        Auth::KeyFile {
            path: test_user().key_path.clone(),
            passphrase: None,
        },
    ];
    let session = Session::connect(&target(server.port, auth), CONNECT_TIMEOUT)
        .await
        .unwrap();
    assert!(session.output("true").await.unwrap().status.success());
}

#[tokio::test]
async fn wrong_password_fails_at_once_with_auth_failed() {
    let server = Dropbear::start();
    let wrong = target(
        server.port,
        vec![Auth::Password("not-the-password".to_owned())],
    );

    let start = Instant::now();
    let err = Session::connect(&wrong, CONNECT_TIMEOUT).await.unwrap_err();
    assert!(
        matches!(&err, SshError::AuthFailed { user, .. } if user == TEST_USER),
        "{err:?}"
    );

    // Not retried either, even with a long deadline.
    let err = Session::connect_with_retry(&wrong, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn connect_with_retry_waits_for_a_server_that_starts_late() {
    let port = free_port().unwrap();
    let late_server = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(1500));
        Dropbear::start_on(port)
    });
    let target = target(port, vec![Auth::Password(TEST_PASSWORD.to_owned())]);
    let start = Instant::now();
    let session = Session::connect_with_retry(&target, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1500));
    let server = late_server.await.unwrap();
    assert_eq!(
        session.output("echo up").await.unwrap().stdout,
        b"up\n",
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn connect_with_retry_gives_up_at_the_deadline() {
    let target = target(
        free_port().unwrap(),
        vec![Auth::Password(TEST_PASSWORD.to_owned())],
    );
    let start = Instant::now();
    let err = Session::connect_with_retry(&target, Duration::from_millis(1500))
        .await
        .unwrap_err();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    match err {
        SshError::GaveUp { attempts, last, .. } => {
            assert!(attempts >= 2, "{attempts}");
            assert!(matches!(*last, SshError::Connect { .. }), "{last:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

#[tokio::test]
async fn silent_server_hits_the_attempt_timeout() {
    // Accepts TCP connections but never speaks SSH.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let target = target(port, vec![Auth::Password(TEST_PASSWORD.to_owned())]);
    let start = Instant::now();
    let err = Session::connect(&target, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_closing_during_the_handshake_is_retried() {
    // Accepts TCP connections and hangs up at once, like an SSH server that is still starting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hang_up = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let target = target(port, vec![Auth::Password(TEST_PASSWORD.to_owned())]);
    let err = Session::connect(&target, CONNECT_TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Handshake { .. }), "{err:?}");
    assert!(err.is_retryable(), "{err:?}");
    let err = Session::connect_with_retry(&target, Duration::from_millis(1200))
        .await
        .unwrap_err();
    match err {
        SshError::GaveUp { attempts, last, .. } => {
            assert!(attempts >= 2, "{attempts}");
            assert!(matches!(*last, SshError::Handshake { .. }), "{last:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let server = Dropbear::start();
    let session = login(&server).await;
    assert_eq!(
        session.output("exit 3").await.unwrap().status,
        ExitStatus::Code(3)
    );
    assert_eq!(
        session.output("exit 255").await.unwrap().status.code(),
        Some(255)
    );
    let killed = session.output("kill -KILL $$").await.unwrap().status;
    assert_eq!(killed, ExitStatus::Signal("KILL".to_owned()));
    assert_eq!(killed.code(), None);
}

#[tokio::test]
async fn stdout_and_stderr_stay_separate() {
    let server = Dropbear::start();
    let session = login(&server).await;
    let out = session
        .output("echo out1; echo err1 >&2; echo out2; echo err2 >&2")
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out1\nout2\n");
    assert_eq!(out.stderr, b"err1\nerr2\n");
}

#[tokio::test]
async fn binary_and_non_ascii_stdin_round_trips_exactly() {
    let server = Dropbear::start();
    let session = login(&server).await;
    let mut input = "é✓ \u{1F41F}\n".as_bytes().to_vec();
    input.push(0xff);
    input.extend(0..=255u8);
    input.extend(b"\r\n\0 no trailing newline");
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = session
        .exec("cat", Some(&input), &mut stdout, &mut stderr)
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(stdout, input);
    assert!(stderr.is_empty());

    // The same bytes as a script for a shell, the way the executor sends job scripts.
    let script = "printf '%s' 'é✓' | od -An -tx1 | tr -d ' \\n'; echo; printf '\\377' | wc -c\n";
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = session
        .exec(
            "/bin/sh -s",
            Some(script.as_bytes()),
            &mut stdout,
            &mut stderr,
        )
        .await
        .unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    assert_eq!(String::from_utf8(stdout).unwrap(), "c3a9e29c93\n1\n");
}

#[tokio::test]
async fn large_output_is_streamed_in_many_chunks() {
    const SIZE: usize = 10 * 1024 * 1024;
    let server = Dropbear::start();
    let session = login(&server).await;
    let mut sink = Recorder::default();
    let status = within(
        Duration::from_secs(120),
        session.exec(
            &format!("yes 0123456789abcdef | head -c {SIZE}"),
            None,
            &mut sink,
            &mut tokio::io::sink(),
        ),
    )
    .await
    .unwrap();
    assert!(status.success());
    assert_eq!(sink.bytes.len(), SIZE);
    assert!(
        sink.bytes
            .chunks(17)
            .all(|line| line == &b"0123456789abcdef\n"[..line.len()])
    );
    assert!(sink.writes.len() > 100, "only {} writes", sink.writes.len());
}

#[tokio::test]
async fn big_stdin_and_big_output_do_not_deadlock() {
    const SIZE: usize = 8 * 1024 * 1024;
    let server = Dropbear::start();
    let session = login(&server).await;
    let input: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = within(
        Duration::from_secs(120),
        session.exec("cat", Some(&input), &mut stdout, &mut stderr),
    )
    .await
    .unwrap();
    assert!(status.success());
    assert!(
        stdout == input,
        "output differs from input ({} vs {} bytes)",
        stdout.len(),
        input.len()
    );
}

#[tokio::test]
async fn output_arrives_while_the_command_still_runs() {
    let server = Dropbear::start();
    let session = login(&server).await;
    let mut sink = Recorder::default();
    let start = Instant::now();
    let status = session
        .exec(
            "echo first; sleep 2; echo second",
            None,
            &mut sink,
            &mut tokio::io::sink(),
        )
        .await
        .unwrap();
    let end = start.elapsed();
    assert!(status.success());
    assert_eq!(sink.bytes, b"first\nsecond\n");
    let first_write = sink.writes[0] - start;
    assert!(
        first_write + Duration::from_millis(1500) < end,
        "first output at {first_write:?}, end {end:?}"
    );
}

#[tokio::test]
async fn several_commands_run_at_once_on_one_session() {
    let server = Dropbear::start();
    let session = login(&server).await;
    let start = Instant::now();
    let (a, b) = tokio::join!(
        session.output("sleep 1; echo a"),
        session.output("sleep 1; echo b")
    );
    assert_eq!(a.unwrap().stdout, b"a\n");
    assert_eq!(b.unwrap().stdout, b"b\n");
    assert!(
        start.elapsed() < Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn cancelling_stops_the_remote_command() {
    let server = Dropbear::start();
    let session = login(&server).await;
    let pattern = "^sleep 100$";
    assert!(
        test_user_processes(pattern).is_empty(),
        "a stale sleep 100 of {TEST_USER} runs already"
    );
    let start = Instant::now();
    let result = session
        .exec_cancellable(
            "sleep 100",
            None,
            &mut tokio::io::sink(),
            &mut tokio::io::sink(),
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await;
    let elapsed = start.elapsed();
    assert!(matches!(result, Err(SshError::Cancelled)), "{result:?}");
    assert!(
        elapsed < Duration::from_millis(1300),
        "cancel took {elapsed:?}"
    );
    assert!(
        test_user_processes(pattern).is_empty(),
        "sleep 100 still runs after cancel"
    );
    // The session stays usable after a cancelled command.
    assert_eq!(
        session.output("echo still").await.unwrap().stdout,
        b"still\n"
    );
}

#[tokio::test]
async fn cancelling_returns_promptly_even_if_the_command_ignores_sigterm() {
    let server = Dropbear::start();
    let session = login(&server).await;
    let start = Instant::now();
    let result = session
        .exec_cancellable(
            "trap '' TERM; sleep 5",
            None,
            &mut tokio::io::sink(),
            &mut tokio::io::sink(),
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await;
    assert!(matches!(result, Err(SshError::Cancelled)), "{result:?}");
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(4), "cancel took {elapsed:?}");
}

/// An AsyncWrite that keeps the bytes and when each write happened.
#[derive(Default)]
struct Recorder {
    bytes: Vec<u8>,
    writes: Vec<Instant>,
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.bytes.extend_from_slice(buf);
        self.writes.push(Instant::now());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_pinned_host_key_admits_that_server_only() {
    let server = Dropbear::start();
    let first = login(&server).await;
    let fingerprint = first.host_key().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    first.close().await.unwrap();

    let pinned = server.password_target().pinned(&fingerprint);
    let again = Session::connect(&pinned, CONNECT_TIMEOUT).await.unwrap();
    assert_eq!(again.host_key(), fingerprint);

    // Another server (its own host keys) at the pinned target's address and port.
    let port = server.port;
    drop(server);
    let impostor = Dropbear::start_on(port);
    let started = Instant::now();
    let err = Session::connect_with_retry(&pinned, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not retried: {err:?}"
    );
    match err {
        SshError::HostKeyChanged { expected, seen, .. } => {
            assert_eq!(expected, fingerprint);
            assert_ne!(seen, fingerprint);
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert!(
        !impostor.log().to_lowercase().contains("password"),
        "no password reached the impostor:\n{}",
        impostor.log()
    );
}
