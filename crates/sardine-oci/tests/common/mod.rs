//! Test helpers: a real `docker-registry` on 127.0.0.1 (the test bed's), a scripted fake
//! registry, random blob files.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sardine_oci::registry::{ClientOptions, Credentials, RegistryClient};
pub use sardine_testbed::Registry;
use sardine_testbed::{RegistryAuth, random_bytes};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A real registry without authentication (the test bed's, on 127.0.0.1).
pub fn start_registry() -> Registry {
    Registry::start(RegistryAuth::Anonymous).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A real registry with htpasswd (Basic) authentication for one user.
pub fn start_registry_with_auth(user: &str, password: &str) -> Registry {
    Registry::start(RegistryAuth::Htpasswd {
        user: user.into(),
        password: password.into(),
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A client of `registry` with fast retries.
pub fn client(
    registry: &Registry,
    credentials: Option<Credentials>,
    chunk: Option<u64>,
) -> RegistryClient {
    RegistryClient::new(&registry.host(), options(credentials, chunk)).unwrap()
}

/// Client options with short retry delays.
pub fn options(credentials: Option<Credentials>, chunk: Option<u64>) -> ClientOptions {
    ClientOptions {
        credentials,
        upload_chunk_size: chunk,
        retry_base_delay: Duration::from_millis(10),
        max_retries: 3,
        ..ClientOptions::default()
    }
}

/// Writes random bytes to `path` and returns them with their digest.
pub fn random_file(path: &Path, len: usize) -> (Vec<u8>, sardine_oci::Digest) {
    let data = random_bytes(len);
    fs_err::write(path, &data).unwrap();
    let digest = sardine_oci::Digest::of(&data);
    (data, digest)
}

/// A request as seen by [`FakeRegistry`].
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FakeRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Builds the response for the n-th request (counted from 0).
pub type Responder = dyn Fn(usize, &FakeRequest) -> Vec<u8> + Send + Sync;

/// A hand-written HTTP/1.1 server that answers each request with scripted raw bytes and closes
/// the connection. Stops when dropped.
pub struct FakeRegistry {
    pub addr: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeRegistry {
    pub async fn start(respond: Arc<Responder>) -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(request) = read_request(&mut stream).await else {
                    continue;
                };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let answer = respond(n, &request);
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            }
        });
        FakeRegistry {
            addr,
            requests,
            task,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn client(&self) -> RegistryClient {
        RegistryClient::new(&self.addr, options(None, None)).unwrap()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a request head and a body announced with `Content-Length`.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<FakeRequest> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut request = FakeRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    let len: usize = request
        .header("Content-Length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    request.body.resize(len, 0);
    stream.read_exact(&mut request.body).await.ok()?;
    Some(request)
}

/// A raw HTTP response with the given status line, extra headers and body.
pub fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
