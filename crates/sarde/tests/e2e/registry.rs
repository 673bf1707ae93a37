//! End-to-end tests of `sarde login`, `logout`, `fetch`, `push` and `pull` against a real
//! docker-registry, real libvirt and the tiny guest (run inside the test bed's namespace).
//!
//! Every test has its own registry, stores, VM directory and credentials file; the machine's
//! auth files are never read or written (REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR and DOCKER_CONFIG
//! point into the test's directory).

use std::collections::HashSet;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sardine_oci::Digest;
use sardine_oci::layout::Store;
use sardine_oci::reference::Reference;
use sardine_testbed::{Registry, RegistryAuth, TestVm, VmGuard, VmOptions};

use crate::common::{SHUTDOWN, Workdir, expect_code, expect_ok, text};

/// A test's directory (its own store, VM directory and credentials).
fn workdir() -> Workdir {
    Workdir::new("registry-test")
}

/// `sarde login REGISTRY -u USER --password-stdin` with `password` on stdin.
fn login(env: &Workdir, registry: &str, user: &str, password: &str) -> Output {
    let mut child = env
        .command(&["login", registry, "-u", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run sarde: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Imports `image` from `ocidir` under a unique name into `<vmdir>/<name>/<name>/`; the guard
/// removes the VM.
pub(crate) fn import(env: &Workdir, ocidir: &Path, image: &str) -> VmGuard {
    let name = sardine_testbed::unique_name("imported");
    let guard = VmGuard::adopt(&name).unwrap();
    let vmdir = env.vmdir().join(&name);
    let printed = env.ok_in(
        ocidir,
        &[
            "import",
            image,
            "--name",
            &name,
            "-o",
            vmdir.to_str().unwrap(),
        ],
    );
    assert_eq!(printed.trim(), name);
    assert!(guard.exists(), "import did not define {name}");
    guard
}

/// Boots `vm`, runs `script` in the guest (failing the test if it fails), powers it off.
fn in_guest(vm: &TestVm, script: &str) {
    vm.start().unwrap();
    let output = vm.ssh(script).unwrap();
    assert_eq!(
        output.code,
        Some(0),
        "{script}: {}{}",
        output.stdout,
        output.stderr
    );
    vm.shutdown(SHUTDOWN).unwrap();
}

/// Boots an imported VM and returns what `command` prints in it.
fn read_in_guest(guard: &VmGuard, command: &str) -> String {
    guard.start().unwrap();
    let output = guard.ssh(command).unwrap();
    assert_eq!(
        output.code,
        Some(0),
        "{command}: {}{}",
        output.stdout,
        output.stderr
    );
    guard.shutdown(SHUTDOWN).unwrap();
    output.stdout
}

/// The config and layer digests of a local image.
fn local_blobs(ocidir: &Path, image: &str) -> Vec<String> {
    let reference = Reference::parse(image).unwrap();
    let repo = Store::new(ocidir).existing_repo(reference.name()).unwrap();
    let desc = repo.resolve(reference.tag(), reference.digest()).unwrap();
    let manifest = repo.read_manifest(&desc).unwrap();
    std::iter::once(manifest.config)
        .chain(manifest.layers)
        .map(|d| d.digest)
        .collect()
}

/// The number of different digests.
fn unique(digests: &[String]) -> usize {
    digests.iter().collect::<HashSet<_>>().len()
}

/// How many of `digests` the local repository of `image` has.
fn present_blobs(ocidir: &Path, image: &str, digests: &[String]) -> usize {
    let reference = Reference::parse(image).unwrap();
    let Ok(repo) = Store::new(ocidir).repo(reference.name()) else {
        return 0;
    };
    digests
        .iter()
        .filter(|d| repo.has_blob(&Digest::parse(d).unwrap()))
        .count()
}

/// Push, fetch into an empty store, import, boot: the file written before export is there.
fn roundtrip(registry: &Registry, env: &Workdir, vm: &TestVm, marker: &str) {
    let image = format!("{}/test/roundtrip:1", registry.host());
    env.ok(&["export", vm.name(), &image]);
    env.ok(&["push", &image]);
    let empty = env.other_store("fetched");
    let printed = expect_ok(&env.run_in(&empty, &["fetch", &image]), ["fetch"]);
    assert!(printed.is_empty(), "fetch printed {printed:?}");
    let guard = import(env, &empty, &image);
    assert_eq!(read_in_guest(&guard, "cat /data/marker").trim(), marker);
}

#[test]
fn registry_roundtrip_anonymous() {
    let env = workdir();
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let vm = TestVm::create(&VmOptions {
        label: "reg-anon".into(),
        backing_chain: true,
        ..VmOptions::default()
    })
    .unwrap();
    in_guest(&vm, "echo anonymous-marker > /data/marker && sync");
    roundtrip(&registry, &env, &vm, "anonymous-marker");

    // pull = fetch + import, printing the VM name.
    let image = format!("{}/test/roundtrip:1", registry.host());
    let name = sardine_testbed::unique_name("pulled");
    let guard = VmGuard::adopt(&name).unwrap();
    let vmdir = env.vmdir().join(&name);
    let pulled = env.ok_in(
        &env.other_store("pulled"),
        &[
            "pull",
            &image,
            "--name",
            &name,
            "-o",
            vmdir.to_str().unwrap(),
        ],
    );
    assert_eq!(pulled.trim(), name);
    assert!(guard.exists());
}

#[test]
fn registry_roundtrip_htpasswd_with_login() {
    let env = workdir();
    let (user, password) = ("fish", "Sardine-Secret-42");
    let registry = Registry::start(RegistryAuth::Htpasswd {
        user: user.into(),
        password: password.into(),
    })
    .unwrap();
    let host = registry.host();

    let wrong = "Wrong-Password-17";
    let failed = login(&env, &host, user, wrong);
    expect_code(&failed, 4, "login with a wrong password");
    let all = format!("{}{}", text(&failed.stdout), text(&failed.stderr));
    assert!(!all.contains(wrong), "the password was printed: {all}");
    assert!(all.contains("refused"), "{all}");
    assert!(
        !env.auth_file().exists(),
        "a failed login wrote {}",
        env.auth_file().display()
    );

    let vm = TestVm::create(&VmOptions {
        label: "reg-auth".into(),
        ..VmOptions::default()
    })
    .unwrap();
    in_guest(&vm, "echo htpasswd-marker > /data/marker && sync");
    let image = format!("{host}/test/roundtrip:1");
    env.ok(&["export", vm.name(), &image]);
    let anonymous = env.run(&["push", &image]);
    expect_code(&anonymous, 4, "push without login");
    assert!(
        text(&anonymous.stderr).contains("sarde login"),
        "{}",
        text(&anonymous.stderr)
    );

    let login = login(&env, &host, user, password);
    expect_ok(&login, ["login"]);
    assert!(
        text(&login.stderr).contains("Login Succeeded"),
        "{}",
        text(&login.stderr)
    );
    let all = format!("{}{}", text(&login.stdout), text(&login.stderr));
    assert!(!all.contains(password), "the password was printed: {all}");
    let mode = fs_err::metadata(env.auth_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        fs_err::read_to_string(env.auth_file())
            .unwrap()
            .contains(&host)
    );

    roundtrip(&registry, &env, &vm, "htpasswd-marker");

    env.ok(&["logout", &host]);
    assert!(
        !fs_err::read_to_string(env.auth_file())
            .unwrap()
            .contains(&host)
    );
    let refused = env.run_in(&env.other_store("after-logout"), &["fetch", &image]);
    expect_code(&refused, 4, "fetch after logout");
    let again = env.run(&["logout", &host]);
    expect_code(&again, 0, "second logout");
}

#[test]
fn registry_skopeo_interop() {
    let env = workdir();
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let host = registry.host();
    let vm = TestVm::create(&VmOptions {
        label: "reg-skopeo".into(),
        ..VmOptions::default()
    })
    .unwrap();

    // sarde pushes, skopeo copies and inspects.
    let ours = format!("{host}/test/a:1");
    env.ok(&["export", vm.name(), &ours]);
    let pushed: serde_json::Value =
        serde_json::from_str(&env.ok(&["push", &ours, "--format", "json"])).unwrap();
    assert_eq!(pushed[0]["target"], ours.as_str(), "{pushed}");
    assert!(pushed[0]["uploaded"].as_u64().unwrap() > 0, "{pushed}");
    let pushed_digest = pushed[0]["manifest_digest"].as_str().unwrap().to_owned();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{ours}"),
        &format!("docker://{host}/test/b:1"),
    ]);
    let inspected = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/test/b:1"),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    let theirs: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["digest"].as_str())
        .collect();
    let blobs = local_blobs(&env.ocidir(), &ours);
    assert_eq!(
        theirs,
        blobs[1..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/test/b:1"),
    ]);

    // skopeo pushes from sarde's store (cut at the first ':', hence the cd), sarde fetches.
    let repo_dir = env.ocidir().join(&host).join("test/a");
    let output = Command::new("skopeo")
        .current_dir(&repo_dir)
        .args([
            "copy",
            "--dest-tls-verify=false",
            "oci:.:1",
            &format!("docker://{host}/test/c:1"),
        ])
        .output()
        .unwrap();
    expect_ok(&output, ["(skopeo copy oci:.:1)"]);
    for copy in ["b", "c"] {
        let image = format!("{host}/test/{copy}:1");
        let store = env.other_store(&format!("store-{copy}"));
        let fetched: serde_json::Value =
            serde_json::from_str(&env.ok_in(&store, &["fetch", &image, "--format", "json"]))
                .unwrap();
        assert_eq!(fetched["reference"], image.as_str(), "{fetched}");
        assert_eq!(fetched["skipped"], 0, "{fetched}");
        if copy == "b" {
            assert_eq!(
                fetched["manifest_digest"],
                pushed_digest.as_str(),
                "skopeo copies bytes"
            );
        }
        assert_eq!(local_blobs(&store, &image), blobs);
        import(&env, &store, &image);
    }
}

fn skopeo(args: &[&str]) -> String {
    let output = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn registry_guest_push_uploads_only_new_blobs() {
    let env = workdir();
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let host = registry.host();
    let vm = TestVm::create(&VmOptions {
        label: "reg-dedup".into(),
        ..VmOptions::default()
    })
    .unwrap();
    in_guest(
        &vm,
        "dd if=/dev/urandom of=/data/base bs=1M count=24 2>/dev/null && sync",
    );
    let one = format!("{host}/test/one:1");
    env.ok(&["export", vm.name(), &one, "--chunksize", "4MiB"]);
    env.ok(&["push", &one]);
    let after_first = registry.completed_uploads();
    assert_eq!(after_first, unique(&local_blobs(&env.ocidir(), &one)));

    let again = env.run(&["push", &one]);
    expect_ok(&again, ["push (again)"]);
    assert_eq!(
        registry.completed_uploads(),
        after_first,
        "re-pushing uploaded blobs:\n{}",
        text(&again.stderr)
    );

    in_guest(&vm, "echo a-little-more > /data/more && sync");
    let two = format!("{host}/test/two:1");
    env.ok(&["export", vm.name(), &two, "--chunksize", "4MiB"]);
    let pushed = env.run(&["push", &two]);
    expect_ok(&pushed, ["push two"]);
    let blobs = unique(&local_blobs(&env.ocidir(), &two));
    let uploads = registry.completed_uploads() - after_first;
    let mounts = registry
        .log()
        .lines()
        .filter(|l| l.contains("mount=sha256") && l.contains("\" 201 "))
        .count();
    eprintln!("second image: {uploads} uploaded, {mounts} mounted, of {blobs} blobs");
    assert!(
        uploads < blobs,
        "{uploads} of {} blobs uploaded:\n{}",
        blobs,
        text(&pushed.stderr)
    );
    assert!(mounts > 0, "nothing was mounted:\n{}", text(&pushed.stderr));
    assert_eq!(uploads + mounts, blobs, "{}", text(&pushed.stderr));
}

#[test]
fn registry_guest_fetch_resumes_after_kill() {
    let env = workdir();
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let vm = TestVm::create(&VmOptions {
        label: "reg-resume".into(),
        ..VmOptions::default()
    })
    .unwrap();
    in_guest(
        &vm,
        "dd if=/dev/urandom of=/data/big bs=1M count=150 2>/dev/null && sync",
    );
    let image = format!("{}/test/big:1", registry.host());
    env.ok(&["export", vm.name(), &image, "--chunksize", "8MiB"]);
    env.ok(&["push", &image]);
    let mut blobs = local_blobs(&env.ocidir(), &image);
    blobs.sort();
    blobs.dedup();
    assert!(blobs.len() > 10, "only {} blobs", blobs.len());

    let store = env.other_store("resumed");
    let before = registry.blob_downloads();
    let mut child = env
        .command_in(&store, &["fetch", &image, "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while present_blobs(&store, &image, &blobs) < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "fetch ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "fetch made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let present = present_blobs(&store, &image, &blobs);
    assert!(present < blobs.len(), "the fetch completed before the kill");
    let first_run = registry.blob_downloads();
    assert!(first_run > before);

    env.ok_in(&store, &["fetch", &image]);
    let second_run = registry.blob_downloads() - first_run;
    let missing = blobs.len() - present;
    eprintln!(
        "killed with {present} of {} blobs; the second run downloaded {second_run}",
        blobs.len()
    );
    assert!(
        second_run <= missing + 1,
        "{second_run} blob downloads for {missing} missing blobs"
    );
    assert_eq!(present_blobs(&store, &image, &blobs), blobs.len());
    import(&env, &store, &image);
}

#[test]
fn registry_corrupt_blob_is_refused() {
    let env = workdir();
    let registry = Registry::start(RegistryAuth::Anonymous).unwrap();
    let vm = TestVm::create(&VmOptions {
        label: "reg-corrupt".into(),
        ..VmOptions::default()
    })
    .unwrap();
    let image = format!("{}/test/corrupt:1", registry.host());
    env.ok(&["export", vm.name(), &image]);
    env.ok(&["push", &image]);
    let blobs = local_blobs(&env.ocidir(), &image);
    let victim = blobs.last().unwrap().clone();

    let proxy = corrupting_proxy::start(registry.addr(), registry.storage_dir(), victim.clone());
    let through_proxy = format!("{}/test/corrupt:1", proxy);
    let store = env.other_store("corrupt");
    let output = env.run_in(&store, &["fetch", &through_proxy]);
    expect_code(&output, 5, "fetch of a corrupted blob");
    assert!(
        text(&output.stderr).contains(&victim),
        "{}",
        text(&output.stderr)
    );

    let reference = Reference::parse(&through_proxy).unwrap();
    let repo = Store::new(&store).repo(reference.name()).unwrap();
    assert!(
        !repo.has_blob(&Digest::parse(&victim).unwrap()),
        "the corrupt blob was kept"
    );
    let tagged = repo.index().map(|index| index.manifests.len()).unwrap_or(0);
    assert_eq!(tagged, 0, "a manifest was tagged");
    let hex = victim.trim_start_matches("sha256:");
    let leftovers: HashSet<String> = walk(&store)
        .into_iter()
        .filter(|p| p.contains(hex))
        .collect();
    assert!(
        leftovers.is_empty(),
        "corrupt data left behind: {leftovers:?}"
    );
}

/// A registry serving TLS with a certificate of its own test CA: refused without the CA
/// (no retries, a hint), accepted with the CA's certificate directory, and with
/// `--tls-verify=false`.
#[test]
fn registry_tls_with_an_own_ca() {
    let env = workdir();
    let registry = Registry::start_tls(RegistryAuth::Anonymous).unwrap();
    let ca_dir = registry.ca_dir().unwrap();
    let ca_dir = ca_dir.to_str().unwrap();
    let vm = TestVm::create(&VmOptions {
        label: "reg-tls".into(),
        ..VmOptions::default()
    })
    .unwrap();
    let image = format!("{}/test/tls:1", registry.host());
    env.ok(&["export", vm.name(), &image]);

    let started = Instant::now();
    let refused = env.run(&["push", &image, "--tls-verify=true"]);
    assert!(!refused.status.success(), "a push without the CA succeeded");
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(
        stderr.contains("hint: ") && stderr.contains("certs.d"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a certificate error is not worth retrying ({:?})",
        started.elapsed()
    );
    assert_eq!(registry.stored_blobs(), 0);

    env.ok(&["push", &image, "--cert-dir", ca_dir]);
    assert!(registry.stored_blobs() > 0);
    let with_ca = env.other_store("with-ca");
    env.ok_in(&with_ca, &["fetch", &image, "--cert-dir", ca_dir]);
    let unverified = env.other_store("unverified");
    env.ok_in(&unverified, &["fetch", &image, "--tls-verify=false"]);
    assert_eq!(
        local_blobs(&with_ca, &image),
        local_blobs(&unverified, &image)
    );
    let without = env.run_in(
        &env.other_store("without"),
        &["fetch", &image, "--tls-verify=true"],
    );
    assert!(
        !without.status.success(),
        "a fetch without the CA succeeded"
    );
}

/// registries.conf: fetch goes through a mirror (a pull-through cache) first and falls back to
/// the registry when the mirror is down; a blocked registry is refused for fetch and push.
#[test]
fn registry_mirrors_and_blocking_from_registries_conf() {
    let env = workdir();
    let upstream = Registry::start(RegistryAuth::Anonymous).unwrap();
    let mirror = Registry::start_mirror_of(&upstream).unwrap();
    let vm = TestVm::create(&VmOptions {
        label: "reg-mirror".into(),
        ..VmOptions::default()
    })
    .unwrap();
    let image = format!("{}/test/mirrored:1", upstream.host());
    env.ok(&["export", vm.name(), &image]);
    env.ok(&["push", &image]);
    let conf = format!(
        "[[registry]]\nlocation = \"{}\"\n[[registry.mirror]]\nlocation = \"{}\"\n",
        upstream.host(),
        mirror.host()
    );
    fs_err::write(env.registries_conf(), &conf).unwrap();

    let through_mirror = env.other_store("through-mirror");
    let fetched = env.run_in(&through_mirror, &["fetch", &image]);
    expect_ok(&fetched, "fetch through the mirror");
    assert!(
        text(&fetched.stderr).contains(&format!("from the mirror {}", mirror.host())),
        "{}",
        text(&fetched.stderr)
    );
    assert!(mirror.blob_downloads() > 0, "the mirror served no blob");
    assert_eq!(
        local_blobs(&through_mirror, &image),
        local_blobs(&env.ocidir(), &image)
    );

    drop(mirror);
    let direct = env.other_store("direct");
    let fallback = env.run_in(&direct, &["fetch", &image]);
    expect_ok(&fallback, "fetch with the mirror down");
    assert!(
        text(&fallback.stderr).contains("trying the next source"),
        "{}",
        text(&fallback.stderr)
    );

    let blocked = format!(
        "[[registry]]\nlocation = \"{}\"\nblocked = true\n",
        upstream.host()
    );
    fs_err::write(env.registries_conf(), blocked).unwrap();
    for args in [["fetch", image.as_str()], ["push", image.as_str()]] {
        let refused = env.run_in(&env.other_store("blocked"), &args);
        assert!(!refused.status.success(), "{args:?} of a blocked registry");
        let stderr = text(&refused.stderr);
        assert!(stderr.contains("is blocked by"), "{stderr}");
        assert!(stderr.contains("hint: "), "{stderr}");
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path.display().to_string()]
            }
        })
        .collect()
}

/// A TCP proxy in front of a registry that serves one blob with a byte flipped.
mod corrupting_proxy {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    /// Starts the proxy on 127.0.0.1 in a thread of its own; returns `127.0.0.1:PORT`.
    pub fn start(registry: SocketAddr, storage: PathBuf, digest: String) -> String {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                sender
                    .send(listener.local_addr().unwrap().to_string())
                    .unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let storage = storage.clone();
                    let digest = digest.clone();
                    tokio::spawn(async move {
                        let _ = serve(client, registry, storage, digest).await;
                    });
                }
            });
        });
        receiver.recv().unwrap()
    }

    /// One request per connection: the victim blob from storage, corrupted; anything else
    /// forwarded with `Connection: close`.
    async fn serve(
        mut client: TcpStream,
        registry: SocketAddr,
        storage: PathBuf,
        digest: String,
    ) -> std::io::Result<()> {
        let head = read_head(&mut client).await?;
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        if request_line.starts_with("GET ") && request_line.contains(&format!("/blobs/{digest}")) {
            let hex = digest.trim_start_matches("sha256:");
            let path = storage
                .join("docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex)
                .join("data");
            let mut body = tokio::fs::read(path).await?;
            let middle = body.len() / 2;
            body[middle] ^= 0x01;
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
                 Docker-Content-Digest: {digest}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            client.write_all(&body).await?;
            return client.shutdown().await;
        }
        let mut upstream = TcpStream::connect(registry).await?;
        let rewritten: String = head
            .split("\r\n")
            .filter(|line| {
                !line.to_ascii_lowercase().starts_with("connection:") && !line.is_empty()
            })
            .map(|line| format!("{line}\r\n"))
            .collect();
        upstream
            .write_all(format!("{rewritten}Connection: close\r\n\r\n").as_bytes())
            .await?;
        tokio::io::copy(&mut upstream, &mut client).await?;
        client.shutdown().await
    }

    /// Reads a request head up to the empty line (requests here have no body).
    async fn read_head(client: &mut TcpStream) -> std::io::Result<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).await? == 0 {
                break;
            }
            head.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&head).into_owned())
    }
}
