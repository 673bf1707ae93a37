//! The registry client against a real `docker-registry` and against scripted hostile fakes.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{
    FakeRegistry, FakeRequest, Registry, client, options, random_file, response, start_registry,
    start_registry_with_auth,
};
use sardine_oci::Digest;
use sardine_oci::registry::{Credentials, RegistryClient, RegistryError};
use sardine_testbed::random_bytes;

const MIB: usize = 1024 * 1024;

fn creds(user: &str, password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: user.into(),
        password: password.into(),
    })
}

/// Pushes `len` random bytes as a blob of `repo`; returns them and their digest.
async fn push_random(client: &RegistryClient, repo: &str, len: usize) -> (Vec<u8>, Digest) {
    let data = random_bytes(len);
    let digest = Digest::of(&data);
    client
        .push_blob_bytes(repo, &digest, Bytes::from(data.clone()))
        .await
        .unwrap();
    (data, digest)
}

/// A blob fetch into `blob.partial` of a new temporary directory.
struct TempFetch {
    _dir: tempfile::TempDir,
    partial: PathBuf,
    result: Result<(), RegistryError>,
}

/// Fetches blob `digest` (`size` bytes) of `repo` into a new temporary directory.
async fn fetch_to_temp(
    client: &RegistryClient,
    repo: &str,
    digest: &Digest,
    size: u64,
) -> TempFetch {
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.partial");
    let result = client
        .fetch_blob(repo, digest, size, &partial, &|_| {})
        .await;
    TempFetch {
        _dir: dir,
        partial,
        result,
    }
}

#[tokio::test]
async fn ping_anonymous() {
    let registry = start_registry();
    client(&registry, None, None).ping().await.unwrap();
}

#[tokio::test]
async fn ping_checks_credentials() {
    let registry = start_registry_with_auth("user", "secret-pass");
    client(&registry, creds("user", "secret-pass"), None)
        .ping()
        .await
        .unwrap();
    let err = client(&registry, creds("user", "wrong-pass"), None)
        .ping()
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        !format!("{err} {err:?}").contains("wrong-pass"),
        "no secret in the error: {err:?}"
    );
    let err = client(&registry, None, None).ping().await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
}

/// Pushes a multi-MiB file, checks it exists, fetches it and compares.
async fn roundtrip(registry: &Registry, chunk: Option<u64>, creds: Option<Credentials>) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("blob");
    let (data, digest) = random_file(&source, 5 * MIB + 123);
    let size = data.len() as u64;
    let client = client(registry, creds, chunk);

    assert_eq!(
        client.blob_exists("test/blob", &digest).await.unwrap(),
        None
    );
    let sent = AtomicU64::new(0);
    client
        .push_blob_file("test/blob", &digest, size, &source, &|n| {
            sent.store(n, Ordering::SeqCst)
        })
        .await
        .unwrap();
    assert_eq!(
        sent.load(Ordering::SeqCst),
        size,
        "progress reaches the blob size"
    );
    assert_eq!(
        client.blob_exists("test/blob", &digest).await.unwrap(),
        Some(size)
    );

    let partial = dir.path().join("fetched.partial");
    let received = AtomicU64::new(0);
    client
        .fetch_blob("test/blob", &digest, size, &partial, &|n| {
            received.store(n, Ordering::SeqCst)
        })
        .await
        .unwrap();
    assert_eq!(received.load(Ordering::SeqCst), size);
    assert!(
        fs_err::read(&partial).unwrap() == data,
        "fetched blob differs"
    );
}

#[tokio::test]
async fn push_and_fetch_monolithic() {
    let registry = start_registry();
    roundtrip(&registry, None, None).await;
}

#[tokio::test]
async fn push_and_fetch_chunked() {
    let registry = start_registry();
    roundtrip(&registry, Some(MIB as u64), None).await;
}

#[tokio::test]
async fn push_and_fetch_with_basic_auth() {
    let registry = start_registry_with_auth("user", "pass");
    roundtrip(&registry, Some(2 * MIB as u64), creds("user", "pass")).await;
}

#[tokio::test]
async fn push_rejects_a_file_of_the_wrong_size() {
    let registry = start_registry();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let (data, digest) = random_file(&path, 1000);
    let err = client(&registry, None, None)
        .push_blob_file("a", &digest, data.len() as u64 + 1, &path, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn push_with_wrong_digest_fails() {
    let registry = start_registry();
    let wrong = Digest::of(b"something else");
    let err = client(&registry, None, None)
        .push_blob_bytes("a", &wrong, Bytes::from_static(b"data"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("DIGEST_INVALID"), "{err}");
}

#[tokio::test]
async fn mount_between_repositories() {
    let registry = start_registry();
    let client = client(&registry, None, None);
    let (data, digest) = push_random(&client, "src/repo", 4096).await;
    assert!(
        client
            .mount_blob("dst/repo", &digest, "src/repo")
            .await
            .unwrap()
    );
    assert_eq!(
        client.blob_exists("dst/repo", &digest).await.unwrap(),
        Some(data.len() as u64)
    );
    let missing = Digest::of(b"never uploaded");
    assert!(
        !client
            .mount_blob("dst/repo", &missing, "src/repo")
            .await
            .unwrap()
    );
    assert_eq!(
        client.blob_exists("dst/repo", &missing).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn manifests_put_and_get() {
    let registry = start_registry();
    let client = client(&registry, None, None);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = Digest::of(config);
    client
        .push_blob_bytes("img", &config_digest, Bytes::from_static(config))
        .await
        .unwrap();
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let digest = client
        .put_manifest("img", "v1", manifest.as_bytes(), media_type)
        .await
        .unwrap();
    assert_eq!(digest, Digest::of(manifest.as_bytes()));

    for reference in ["v1", digest.as_str()] {
        let got = client.get_manifest("img", reference).await.unwrap();
        assert_eq!(got.body, manifest.as_bytes());
        assert_eq!(got.media_type, media_type);
        assert_eq!(got.digest, digest);
    }
    let err = client.get_manifest("img", "nope").await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    let err = client.get_manifest("img", "bad/tag").await.unwrap_err();
    assert!(matches!(err, RegistryError::InvalidName { .. }), "{err:?}");
}

#[tokio::test]
async fn fetch_resumes_a_partial_download() {
    let registry = start_registry();
    let client = client(&registry, None, None);
    let (data, digest) = push_random(&client, "resume", 3 * MIB + 7).await;

    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.partial");
    fs_err::write(&partial, &data[..MIB]).unwrap();
    let first = Mutex::new(None);
    let progress = |n| {
        first.lock().unwrap().get_or_insert(n);
    };
    client
        .fetch_blob("resume", &digest, data.len() as u64, &partial, &progress)
        .await
        .unwrap();
    assert_eq!(
        *first.lock().unwrap(),
        Some(MIB as u64),
        "the existing prefix counts as done"
    );
    assert!(fs_err::read(&partial).unwrap() == data);

    // A complete partial is verified without downloading again.
    client
        .fetch_blob("resume", &digest, data.len() as u64, &partial, &|_| {})
        .await
        .unwrap();
}

#[tokio::test]
async fn fetch_with_a_corrupt_partial_fails_and_discards_it() {
    let registry = start_registry();
    let client = client(&registry, None, None);
    let (data, digest) = push_random(&client, "corrupt", 2 * MIB).await;

    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("blob.partial");
    fs_err::write(&partial, vec![0u8; MIB]).unwrap();
    let err = client
        .fetch_blob("corrupt", &digest, data.len() as u64, &partial, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(!partial.exists(), "the corrupt partial is deleted");

    // The next attempt starts from scratch and succeeds.
    client
        .fetch_blob("corrupt", &digest, data.len() as u64, &partial, &|_| {})
        .await
        .unwrap();
    assert!(fs_err::read(&partial).unwrap() == data);
}

#[tokio::test]
async fn fetch_of_a_missing_blob_is_not_found() {
    let registry = start_registry();
    let client = client(&registry, None, None);
    let err = fetch_to_temp(&client, "none", &Digest::of(b"x"), 1)
        .await
        .result
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
}

/// A fake registry serving `body` for every blob GET, with `Content-Length` if `announce`.
async fn serving(body: Vec<u8>, announce: bool) -> FakeRegistry {
    FakeRegistry::start(Arc::new(move |_, _: &FakeRequest| {
        let headers = if announce {
            vec![("Content-Length", body.len().to_string())]
        } else {
            vec![]
        };
        response("200 OK", &headers, &body)
    }))
    .await
}

#[tokio::test]
async fn hostile_registry_serving_wrong_bytes() {
    let data = random_bytes(100_000);
    let digest = Digest::of(&data);
    let fake = serving(random_bytes(data.len()), true).await;
    let fetch = fetch_to_temp(&fake.client(), "repo", &digest, data.len() as u64).await;
    let err = fetch.result.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(!fetch.partial.exists());
}

#[tokio::test]
async fn hostile_registry_sending_too_much() {
    let data = random_bytes(50_000);
    let digest = Digest::of(&data);
    for announce in [true, false] {
        let mut body = data.clone();
        body.extend_from_slice(&random_bytes(100_000));
        let fake = serving(body, announce).await;
        let fetch = fetch_to_temp(&fake.client(), "repo", &digest, data.len() as u64).await;
        let err = fetch.result.unwrap_err();
        assert!(
            matches!(err, RegistryError::TooLarge { .. }),
            "announce={announce}: {err:?}"
        );
        assert!(!fetch.partial.exists(), "announce={announce}");
        assert!(fake.requests() <= 1, "not retried");
    }
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let data = random_bytes(70_000);
    let digest = Digest::of(&data);
    let body = data.clone();
    let fake = FakeRegistry::start(Arc::new(move |n, _: &FakeRequest| {
        if n < 2 {
            response(
                "503 Service Unavailable",
                &[("Retry-After", "0".into()), ("Content-Length", "0".into())],
                b"",
            )
        } else {
            response(
                "200 OK",
                &[("Content-Length", body.len().to_string())],
                &body,
            )
        }
    }))
    .await;
    let fetch = fetch_to_temp(&fake.client(), "repo", &digest, data.len() as u64).await;
    fetch.result.unwrap();
    assert_eq!(fake.requests(), 3);
    assert!(fs_err::read(&fetch.partial).unwrap() == data);
}

#[tokio::test]
async fn retries_are_bounded() {
    let fake = FakeRegistry::start(Arc::new(|_, _: &FakeRequest| {
        response(
            "500 Internal Server Error",
            &[("Content-Length", "4".into())],
            b"boom",
        )
    }))
    .await;
    let err = fake.client().ping().await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(
        fake.requests(),
        4,
        "one attempt and max_retries (3) retries"
    );
}

#[tokio::test]
async fn truncated_download_resumes_with_range() {
    let data = random_bytes(80_000);
    let digest = Digest::of(&data);
    let body = data.clone();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    let fake = FakeRegistry::start(Arc::new(move |n, request: &FakeRequest| {
        seen.lock()
            .unwrap()
            .push(request.header("Range").map(str::to_owned));
        if n == 0 {
            // Announce everything, send half, close.
            response(
                "200 OK",
                &[("Content-Length", body.len().to_string())],
                &body[..30_000],
            )
        } else {
            let start: usize = request
                .header("Range")
                .unwrap()
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let headers = [
                ("Content-Length", (body.len() - start).to_string()),
                (
                    "Content-Range",
                    format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
                ),
            ];
            response("206 Partial Content", &headers, &body[start..])
        }
    }))
    .await;
    let fetch = fetch_to_temp(&fake.client(), "repo", &digest, data.len() as u64).await;
    fetch.result.unwrap();
    assert!(fs_err::read(&fetch.partial).unwrap() == data);
    assert_eq!(
        *ranges.lock().unwrap(),
        vec![None, Some("bytes=30000-".to_owned())]
    );
}

#[tokio::test]
async fn bearer_token_flow() {
    let token_requests = Arc::new(Mutex::new(Vec::new()));
    // The challenge names the fake's own address, which is only known once it listens.
    let addr_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let addr_for_fake = Arc::clone(&addr_cell);
    let seen = Arc::clone(&token_requests);
    let fake = FakeRegistry::start(Arc::new(move |_, request: &FakeRequest| {
        if request.path.starts_with("/token") {
            seen.lock().unwrap().push((
                request.path.clone(),
                request.header("Authorization").map(str::to_owned),
            ));
            let body = br#"{"access_token":"unused","token":"tok123","expires_in":300}"#;
            return response(
                "200 OK",
                &[("Content-Length", body.len().to_string())],
                body,
            );
        }
        if request.header("Authorization") == Some("Bearer tok123") {
            return response("200 OK", &[("Content-Length", "2".into())], b"{}");
        }
        let realm = format!(
            r#"Bearer realm="http://{}/token",service="fake""#,
            addr_for_fake.lock().unwrap()
        );
        response(
            "401 Unauthorized",
            &[("Content-Length", "0".into()), ("WWW-Authenticate", realm)],
            b"",
        )
    }))
    .await;
    *addr_cell.lock().unwrap() = fake.addr.clone();
    let client = RegistryClient::new(&fake.addr, common::options(creds("u", "p"), None)).unwrap();
    assert_eq!(
        client
            .blob_exists("team/repo", &Digest::of(b"x"))
            .await
            .unwrap(),
        Some(2)
    );
    // The token is cached for the scope: no second token request.
    assert_eq!(
        client
            .blob_exists("team/repo", &Digest::of(b"y"))
            .await
            .unwrap(),
        Some(2)
    );
    let requests = token_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (path, auth) = &requests[0];
    assert!(
        path.contains("service=fake") && path.contains("scope=repository%3Ateam%2Frepo%3Apull"),
        "{path}"
    );
    assert_eq!(auth.as_deref(), Some("Basic dTpw"));
}

#[tokio::test]
async fn chunked_upload_falls_back_to_one_put() {
    let data = random_bytes(300_000);
    let digest = Digest::of(&data);
    let log = Arc::new(Mutex::new(Vec::<FakeRequest>::new()));
    let seen = Arc::clone(&log);
    let fake = FakeRegistry::start(Arc::new(move |_, request: &FakeRequest| {
        seen.lock().unwrap().push(request.clone());
        let empty = ("Content-Length", "0".to_owned());
        match request.method.as_str() {
            "POST" => response(
                "202 Accepted",
                &[
                    empty,
                    ("Location", "/v2/repo/blobs/uploads/u1?_state=abc".into()),
                ],
                b"",
            ),
            "PATCH" => response("416 Range Not Satisfiable", &[empty], b""),
            "DELETE" => response("204 No Content", &[empty], b""),
            "PUT" => response("201 Created", &[empty], b""),
            _ => response("405 Method Not Allowed", &[empty], b""),
        }
    }))
    .await;
    let client = RegistryClient::new(&fake.addr, common::options(None, Some(100_000))).unwrap();
    client
        .push_blob_bytes("repo", &digest, Bytes::from(data.clone()))
        .await
        .unwrap();
    let log = log.lock().unwrap();
    let methods: Vec<&str> = log.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "PATCH", "DELETE", "POST", "PUT"]);
    let put = &log[4];
    assert_eq!(
        put.path,
        format!(
            "/v2/repo/blobs/uploads/u1?_state=abc&digest={}",
            digest.replace(':', "%3A")
        )
    );
    assert!(put.body == data, "the PUT carries the whole blob");
    assert_eq!(log[1].header("Content-Range"), Some("0-99999"));
}

/// A hostile registry that names an upload location on another host: the upload goes there,
/// but the credentials, which the registry asked for, stay with the registry.
#[tokio::test]
async fn credentials_never_go_to_an_upload_location_on_another_origin() {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let other = FakeRegistry::start(Arc::new(move |_, request: &FakeRequest| {
        let authorization = request.header("Authorization").map(str::to_owned);
        record.lock().unwrap().push(authorization);
        response("201 Created", &[("Content-Length", "0".into())], b"")
    }))
    .await;
    let location = format!("http://{}/v2/repo/blobs/uploads/elsewhere", other.addr);
    let hostile = FakeRegistry::start(Arc::new(move |_, request: &FakeRequest| {
        if request.header("Authorization").is_none() {
            let challenge = ("WWW-Authenticate", r#"Basic realm="hostile""#.to_owned());
            return response(
                "401 Unauthorized",
                &[challenge, ("Content-Length", "0".into())],
                b"",
            );
        }
        response(
            "202 Accepted",
            &[
                ("Location", location.clone()),
                ("Content-Length", "0".into()),
            ],
            b"",
        )
    }))
    .await;
    let client =
        RegistryClient::new(&hostile.addr, options(creds("user", "secret"), None)).unwrap();
    let data = Bytes::from_static(b"a blob");
    client
        .push_blob_bytes("repo", &Digest::of(&data), data.clone())
        .await
        .unwrap();
    assert!(
        hostile.requests() >= 2,
        "the registry was asked with credentials"
    );
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "the upload went to the other host");
    assert!(
        seen.iter().all(Option::is_none),
        "the other host got credentials: {seen:?}"
    );
}
