//! Registries with their own certificates, found as the container tools find them
//! (containers-certs.d(5)): a directory per registry, `<dir>/<host[:port]>/`, holding CA
//! certificates (`*.crt`) and client certificate pairs (`*.cert` with the `*.key` of the same
//! name), under `/etc/containers/certs.d`, `/etc/docker/certs.d` and
//! `~/.config/containers/certs.d`; or one directory given for the registry at hand.

use std::path::{Path, PathBuf};

use super::RegistryError;

/// Where certificate directories of registries are looked for, in order.
pub fn certs_d_roots() -> Vec<PathBuf> {
    let mut roots = vec![
        PathBuf::from("/etc/containers/certs.d"),
        PathBuf::from("/etc/docker/certs.d"),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(Path::new(&home).join(".config/containers/certs.d"));
    }
    roots
}

/// The certificate directory of `registry`: `given`, else the first `<root>/<registry>/` of
/// [`certs_d_roots`] that exists.
pub fn cert_dir_of(registry: &str, given: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = given {
        return Some(dir.to_owned());
    }
    certs_d_roots()
        .into_iter()
        .map(|root| root.join(registry))
        .find(|dir| dir.is_dir())
}

/// What a certificate directory holds, as PEM.
#[derive(Debug, Default)]
pub(crate) struct CertDir {
    /// CA certificates (`*.crt`).
    pub roots: Vec<(PathBuf, Vec<u8>)>,
    /// A client certificate followed by its key (`NAME.cert` + `NAME.key`).
    pub identity: Option<(PathBuf, Vec<u8>)>,
}

/// Reads `dir` (see the module documentation). A `*.cert` without its `*.key` is an error, as
/// with podman.
pub(crate) fn read_cert_dir(dir: &Path) -> Result<CertDir, RegistryError> {
    let mut entries: Vec<PathBuf> = fs_err::read_dir(dir)
        .map_err(|e| RegistryError::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut found = CertDir::default();
    for path in entries {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => found.roots.push((path.clone(), read(&path)?)),
            Some("cert") if found.identity.is_none() => {
                let key = path.with_extension("key");
                if !key.is_file() {
                    return Err(RegistryError::io(
                        &key,
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("the client certificate {} has no key", path.display()),
                        ),
                    ));
                }
                let mut pem = read(&path)?;
                pem.push(b'\n');
                pem.extend(read(&key)?);
                found.identity = Some((path, pem));
            }
            _ => {}
        }
    }
    Ok(found)
}

fn read(path: &Path) -> Result<Vec<u8>, RegistryError> {
    fs_err::read(path).map_err(|e| RegistryError::io(path, e))
}

/// Adds the certificates of `dir` to `builder`.
pub(crate) fn configure(
    mut builder: reqwest::ClientBuilder,
    registry: &str,
    dir: &Path,
) -> Result<reqwest::ClientBuilder, RegistryError> {
    let found = read_cert_dir(dir)?;
    let invalid = |path: &Path, source: reqwest::Error| RegistryError::Certificate {
        registry: registry.to_owned(),
        path: path.to_owned(),
        source,
    };
    for (path, pem) in &found.roots {
        for certificate in
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| invalid(path, e))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some((path, pem)) = &found.identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem).map_err(|e| invalid(path, e))?);
    }
    tracing::debug!(
        registry,
        dir = %dir.display(),
        cas = found.roots.len(),
        client_certificate = found.identity.is_some(),
        "using the registry's certificate directory"
    );
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cert_dir_gives_cas_and_a_client_pair() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("ca.crt"), "CA").unwrap();
        fs_err::write(dir.path().join("other.crt"), "CA2").unwrap();
        fs_err::write(dir.path().join("client.cert"), "CERT").unwrap();
        fs_err::write(dir.path().join("client.key"), "KEY").unwrap();
        fs_err::write(dir.path().join("README"), "ignored").unwrap();
        let found = read_cert_dir(dir.path()).unwrap();
        assert_eq!(found.roots.len(), 2);
        assert_eq!(found.identity.unwrap().1, b"CERT\nKEY");
    }

    #[test]
    fn a_client_certificate_without_its_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("client.cert"), "CERT").unwrap();
        let error = read_cert_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("client.key"), "{error}");
    }

    #[test]
    fn a_given_directory_wins_over_certs_d() {
        let given = Path::new("/srv/certs");
        assert_eq!(cert_dir_of("r.example:5000", Some(given)).unwrap(), given);
        assert_eq!(cert_dir_of("no-such-registry.invalid:1", None), None);
    }
}
