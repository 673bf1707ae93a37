//! Blob downloads into resumable partial files, verified against their digest.
//!
//! A partial file keeps what earlier attempts (or runs) received. Its prefix is hashed again
//! before the download continues with `Range: bytes=N-`, so the final check covers every byte
//! on disk, not just the bytes of this run.

use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use sha2::{Digest as _, Sha256};
use tokio::fs::File;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tracing::{debug, warn};

use super::auth::pull_scope;
use super::{RegistryClient, RegistryError, Retry, header_str};
use crate::Digest;

/// Size of the pieces read when hashing an existing partial file.
const REHASH_CHUNK: usize = 1024 * 1024;

/// A partial file being filled, with the hash of what it holds so far.
struct Partial<'a> {
    path: &'a Path,
    file: File,
    hasher: Sha256,
    len: u64,
}

impl<'a> Partial<'a> {
    /// Opens (or creates) the partial file and hashes what it already holds.
    /// A file longer than `size` cannot be a prefix of the blob and is emptied.
    async fn open(path: &'a Path, size: u64) -> Result<Self, RegistryError> {
        let io = |e| RegistryError::io(path, e);
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .await
            .map_err(io)?;
        let on_disk = file.metadata().await.map_err(io)?.len();
        let mut partial = Partial {
            path,
            file,
            hasher: Sha256::new(),
            len: 0,
        };
        if on_disk > size {
            partial.restart().await?;
            return Ok(partial);
        }
        let mut buf = vec![0; REHASH_CHUNK];
        loop {
            let n = partial.file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            partial.hasher.update(&buf[..n]);
            partial.len += n as u64;
        }
        Ok(partial)
    }

    /// Empties the file: the registry is sending the blob from its start.
    async fn restart(&mut self) -> Result<(), RegistryError> {
        let io = |e| RegistryError::io(self.path, e);
        self.file.flush().await.map_err(io)?;
        self.file.set_len(0).await.map_err(io)?;
        self.file
            .seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(io)?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    async fn append(&mut self, data: &[u8]) -> Result<(), RegistryError> {
        self.file
            .write_all(data)
            .await
            .map_err(|e| RegistryError::io(self.path, e))?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), RegistryError> {
        let io = |e| RegistryError::io(self.path, e);
        self.file.flush().await.map_err(io)?;
        self.file.sync_all().await.map_err(io)
    }

    fn digest(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }
}

impl RegistryClient {
    /// Downloads a blob into `partial`, resuming what it already holds, and verifies it.
    ///
    /// If `partial` has N bytes, only bytes N.. are requested (a registry that ignores the range
    /// makes the download start again from 0). More than `size` bytes are never written; a
    /// registry that sends more fails with [`RegistryError::TooLarge`]. The file is synced and
    /// its sha256 compared with `digest`: on a mismatch `partial` is deleted and
    /// [`RegistryError::DigestMismatch`] returned. `Ok` means `partial` is complete and verified.
    ///
    /// `progress` is called with the number of bytes of the blob on disk so far.
    pub async fn fetch_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        partial: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let mut part = Partial::open(partial, size).await?;
        progress(part.len);
        let mut attempt = 0;
        while part.len < size {
            match self
                .download_into(repo, digest, size, &mut part, progress)
                .await
            {
                Ok(()) => {}
                Err(err) if err.is_transient() && attempt < self.inner.opts.max_retries => {
                    let delay = self.backoff(attempt);
                    warn!(registry = %self.inner.registry, %digest, received = part.len, error = %err, ?delay, "download interrupted, resuming");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err @ RegistryError::TooLarge { .. }) => {
                    drop(part);
                    discard(partial);
                    return Err(err);
                }
                Err(err) => return Err(err),
            }
        }
        part.sync().await?;
        let actual = part.digest();
        drop(part);
        if actual != *digest {
            discard(partial);
            return Err(RegistryError::DigestMismatch {
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(())
    }

    /// One `GET` of the missing part of a blob, appended to `part`.
    async fn download_into(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        part: &mut Partial<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"))?;
        let action = format!("download blob {digest} from {repo}");
        let scopes = [pull_scope(repo)];
        let offset = part.len;
        let resp = self
            .execute(&scopes, &action, Retry::Transient, || {
                let get = self.inner.http.get(url.clone());
                Ok(if offset > 0 {
                    get.header(RANGE, format!("bytes={offset}-"))
                } else {
                    get
                })
            })
            .await?;
        let mut resp = self
            .check(
                resp,
                &[StatusCode::OK, StatusCode::PARTIAL_CONTENT],
                &action,
                || format!("blob {digest} in {repo}"),
            )
            .await?;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            if content_range_start(header_str(&resp, CONTENT_RANGE)) != Some(offset) {
                return Err(self.protocol(
                    &action,
                    &format!("its partial answer does not start at byte {offset}"),
                ));
            }
        } else if offset > 0 {
            debug!(%digest, "registry ignored the range request, downloading from the start");
            part.restart().await?;
        }
        let too_large = || RegistryError::TooLarge {
            registry: self.inner.registry.clone(),
            what: format!("blob {digest}"),
            limit: size,
        };
        let announced: Option<u64> = header_str(&resp, CONTENT_LENGTH).and_then(|s| s.parse().ok());
        if announced.is_some_and(|len| part.len + len > size) {
            return Err(too_large());
        }
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|source| self.transport(&action, source))?
        {
            if part.len + chunk.len() as u64 > size {
                return Err(too_large());
            }
            part.append(&chunk).await?;
            progress(part.len);
        }
        if part.len < size {
            let (registry, digest) = (self.inner.registry.clone(), digest.clone());
            return Err(RegistryError::Truncated {
                registry,
                digest,
                received: part.len,
                expected: size,
            });
        }
        Ok(())
    }
}

/// Deletes a partial file whose content is known to be wrong.
fn discard(path: &Path) {
    if let Err(err) = fs_err::remove_file(path) {
        warn!(error = %err, "could not delete the corrupt download");
    }
}

/// The first byte of a `Content-Range: bytes <start>-<end>/<total>` header.
fn content_range_start(header: Option<&str>) -> Option<u64> {
    let range = header?.trim().strip_prefix("bytes")?.trim_start();
    range.split_once('-')?.0.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_starts() {
        assert_eq!(content_range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(content_range_start(Some("bytes 0-0/*")), Some(0));
        assert_eq!(content_range_start(Some("100-199/200")), None);
        assert_eq!(content_range_start(None), None);
    }
}
