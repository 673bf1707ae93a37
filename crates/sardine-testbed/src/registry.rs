//! A real `docker-registry` (distribution) per test, on 127.0.0.1, stopped when dropped: plain
//! HTTP, or TLS with a certificate signed by a test CA made for it (openssl).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::net::free_port;

/// How clients must authenticate to a test registry.
#[derive(Debug, Clone)]
pub enum RegistryAuth {
    /// No authentication.
    Anonymous,
    /// HTTP Basic against an htpasswd file holding this one user.
    Htpasswd {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

/// A running registry with its own storage directory; killed and removed on drop.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    tls: bool,
}

/// What kind of registry to start.
#[derive(Debug, Clone, Default)]
struct Kind {
    tls: bool,
    /// A pull-through cache of this upstream URL.
    proxy: Option<String>,
}

impl Registry {
    /// Starts a registry on a free port of 127.0.0.1 and waits until `GET /v2/` answers.
    pub fn start(auth: RegistryAuth) -> anyhow::Result<Registry> {
        Registry::start_with(auth, Kind::default())
    }

    /// A pull-through cache (distribution's proxy mode) of the plain-HTTP registry `upstream`:
    /// what a fleet of runners puts in front of a registry as a mirror.
    pub fn start_mirror_of(upstream: &Registry) -> anyhow::Result<Registry> {
        let kind = Kind {
            tls: false,
            proxy: Some(format!("http://{}", upstream.host())),
        };
        Registry::start_with(RegistryAuth::Anonymous, kind)
    }

    /// Like [`Registry::start`], serving TLS only, with a certificate for 127.0.0.1 signed by
    /// a CA of its own ([`Registry::ca_dir`]).
    pub fn start_tls(auth: RegistryAuth) -> anyhow::Result<Registry> {
        let kind = Kind {
            tls: true,
            proxy: None,
        };
        Registry::start_with(auth, kind)
    }

    /// A certificate directory (containers-certs.d(5)) holding the CA of a TLS registry as
    /// `ca.crt`.
    pub fn ca_dir(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("client"))
    }

    fn start_with(auth: RegistryAuth, kind: Kind) -> anyhow::Result<Registry> {
        let tls = kind.tls;
        let dir = tempfile::Builder::new()
            .prefix("sardine-test-registry-")
            .tempdir_in(scratch_parent()?)?;
        if tls {
            make_certificates(dir.path())?;
        }
        let log_path = dir.path().join("registry.log");
        let mut last_error = anyhow::anyhow!("registry did not start");
        // A free port can be taken by someone else between our probe and the registry's bind.
        for _ in 0..5 {
            let port = free_port()?;
            let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
            let mut child = spawn(dir.path(), port, &auth, &kind)?;
            match wait_ready(&mut child, addr, &log_path, Duration::from_secs(10)) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        addr,
                        dir,
                        tls,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry's storage root.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Everything the registry logged so far (including its access log).
    pub fn log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many blob uploads the registry completed (`PUT .../blobs/uploads/...` answered 201).
    pub fn completed_uploads(&self) -> usize {
        count_requests(&self.log(), "PUT", "/blobs/uploads/", "201")
    }

    /// How many blob downloads (`GET .../blobs/sha256:...`) the registry answered.
    pub fn blob_downloads(&self) -> usize {
        count_requests(&self.log(), "GET", "/blobs/sha256:", "200")
            + count_requests(&self.log(), "GET", "/blobs/sha256:", "206")
    }

    /// Number of distinct blobs in the registry's storage.
    pub fn stored_blobs(&self) -> usize {
        let blobs = self.storage_dir().join("docker/registry/v2/blobs/sha256");
        walk_files(&blobs)
            .into_iter()
            .filter(|p| p.ends_with("data"))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the registry's configuration into `dir` and starts it.
fn spawn(dir: &Path, port: u16, auth: &RegistryAuth, kind: &Kind) -> anyhow::Result<Child> {
    let storage = dir.join("storage");
    fs_err::create_dir_all(&storage)?;
    let mut config = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    if kind.tls {
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        ));
    }
    if let Some(upstream) = &kind.proxy {
        config.push_str(&format!("proxy:\n  remoteurl: {upstream}\n"));
    }
    if let RegistryAuth::Htpasswd { user, password } = auth {
        let htpasswd = dir.join("htpasswd");
        write_htpasswd(&htpasswd, user, password)?;
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: sardinecake-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    let config_path = dir.join("config.yml");
    fs_err::write(&config_path, config)?;
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let mut command = Command::new("docker-registry");
    // distribution reads every REGISTRY_* variable as a setting (REGISTRY_AUTH_FILE would
    // become auth.file): the registry gets none of ours.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            command.env_remove(key);
        }
    }
    command
        .arg("serve")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting docker-registry (is it installed? run scripts/setup-testbed)")
}

/// Makes `ca.key`/`client/ca.crt` (a test CA) and `server.key`/`server.crt` (for 127.0.0.1,
/// signed by the CA) in `dir`.
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    fs_err::create_dir_all(dir.join("client"))?;
    let ext = dir.join("server.ext");
    fs_err::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )?;
    let path = |name: &str| dir.join(name).display().to_string();
    let (ca_key, ca_crt) = (path("ca.key"), path("client/ca.crt"));
    let (key, csr, crt, ext) = (
        path("server.key"),
        path("server.csr"),
        path("server.crt"),
        ext.display().to_string(),
    );
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &new_key,
            &["-keyout", &ca_key, "-out", &ca_crt, "-days", "2"],
            &["-subj", "/CN=sardinecake test CA"],
        ]
        .concat(),
        [
            &["req"][..],
            &new_key,
            &["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(&args)
            .output()
            .context("running openssl (run scripts/setup-testbed)")?;
        if !output.status.success() {
            bail!(
                "openssl {} failed:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}

/// Waits until the registry answers `GET /v2/` (200, or 401 with authentication; 400 from a
/// TLS registry, which refuses the plain request but is up).
fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    log: &Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = child.try_wait()? {
            let log = fs_err::read_to_string(log).unwrap_or_default();
            bail!("docker-registry exited with {status}:\n{log}");
        }
        if let Ok(200 | 401 | 400) = http_status(addr, "/v2/") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("docker-registry on {addr} did not answer within {timeout:?}")
}

fn scratch_parent() -> anyhow::Result<PathBuf> {
    let dir = crate::scratch_dir();
    fs_err::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes a bcrypt htpasswd file; the password goes through stdin, never on a command line.
fn write_htpasswd(path: &Path, user: &str, password: &str) -> anyhow::Result<()> {
    let mut child = Command::new("htpasswd")
        .args(["-i", "-B", "-n", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running htpasswd (package apache2-utils)")?;
    child
        .stdin
        .take()
        .context("htpasswd stdin")?
        .write_all(password.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "htpasswd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    fs_err::write(path, output.stdout)?;
    Ok(())
}

/// The status code of a plain `GET path` (enough to see that the registry is up).
fn http_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 16];
    stream.read_exact(&mut head[..12])?;
    let line = String::from_utf8_lossy(&head[..12]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("malformed HTTP status line")
}

fn count_requests(log: &str, method: &str, path_part: &str, status: &str) -> usize {
    log.lines()
        .filter(|line| {
            let Some(start) = line.find(&format!("\"{method} ")) else {
                return false;
            };
            let request = &line[start..];
            let Some(end) = request[1..].find('"') else {
                return false;
            };
            let (req, rest) = request.split_at(end + 2);
            req.contains(path_part) && rest.split_whitespace().next() == Some(status)
        })
        .count()
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs_err::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_access_log_lines() {
        let log = r#"127.0.0.1 - - [22/Nov/2026:00:00:00 +0000] "PUT /v2/a/blobs/uploads/u?digest=sha256:1 HTTP/1.1" 201 0 "" "x"
127.0.0.1 - - [22/Nov/2026:00:00:00 +0000] "PATCH /v2/a/blobs/uploads/u HTTP/1.1" 202 0 "" "x"
127.0.0.1 - - [22/Nov/2026:00:00:00 +0000] "PUT /v2/a/blobs/uploads/v?digest=sha256:2 HTTP/1.1" 400 0 "" "x""#;
        assert_eq!(count_requests(log, "PUT", "/blobs/uploads/", "201"), 1);
        assert_eq!(count_requests(log, "PATCH", "/blobs/uploads/", "202"), 1);
        assert_eq!(count_requests(log, "GET", "/blobs/", "200"), 0);
    }
}
