//! Blob uploads: one streamed `PUT`, or `PATCH` chunks with a fallback to one `PUT`.
//!
//! Bodies are streamed from disk and recreated from the file whenever a request has to be sent
//! again, so a blob is never held in memory. A failed chunk is resumed from the offset the
//! registry reports; anything else restarts the whole upload (bounded by `max_retries`).

use std::future::Future;
use std::io::{Seek as _, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Response, StatusCode, Url};
use tokio::io::AsyncReadExt as _;
use tokio_util::io::ReaderStream;
use tracing::{info, warn};

use super::auth::push_scope;
use super::error::is_transient_status;
use super::{RegistryClient, RegistryError, Retry, checked_repo, header_str, retry_after};
use crate::Digest;

const OCTET_STREAM: &str = "application/octet-stream";
/// Size of the pieces read from disk while streaming a body.
const READ_CHUNK: usize = 256 * 1024;
/// How often upload progress is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// Where the bytes of a blob come from.
enum BlobSource<'a> {
    File(&'a Path),
    Bytes(Bytes),
}

impl BlobSource<'_> {
    /// A request body with bytes `offset..offset + len`; bytes handed to the connection are
    /// added to `sent`.
    fn body(
        &self,
        offset: u64,
        len: u64,
        sent: &Arc<AtomicU64>,
    ) -> Result<reqwest::Body, RegistryError> {
        match self {
            BlobSource::Bytes(data) => {
                let range = usize::try_from(offset).unwrap_or(usize::MAX)
                    ..usize::try_from(offset + len).unwrap_or(usize::MAX);
                sent.fetch_add(len, Ordering::Relaxed);
                Ok(reqwest::Body::from(data.slice(range)))
            }
            BlobSource::File(path) => {
                let mut file = fs_err::File::open(path).map_err(|e| RegistryError::io(*path, e))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| RegistryError::io(*path, e))?;
                let reader = tokio::fs::File::from_std(file.into_file()).take(len);
                let sent = Arc::clone(sent);
                let stream =
                    ReaderStream::with_capacity(reader, READ_CHUNK).inspect_ok(move |chunk| {
                        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    });
                Ok(reqwest::Body::wrap_stream(stream))
            }
        }
    }
}

/// The result of a chunked upload attempt.
enum Chunked {
    Done,
    /// The registry does not accept `PATCH` uploads; the session was cancelled.
    Rejected,
}

impl RegistryClient {
    /// Uploads a blob from a file, streaming it from disk.
    ///
    /// `progress` is called with the number of bytes of this blob sent so far (it starts again
    /// from 0 when the upload has to be restarted).
    pub async fn push_blob_file(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        path: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let actual = fs_err::metadata(path)
            .map_err(|e| RegistryError::io(path, e))?
            .len();
        if actual != size {
            return Err(RegistryError::SizeMismatch {
                path: path.to_owned(),
                digest: digest.clone(),
                expected: size,
                actual,
            });
        }
        self.push_blob(repo, digest, size, &BlobSource::File(path), progress)
            .await
    }

    /// Uploads a small blob held in memory (configs, small layers).
    pub async fn push_blob_bytes(
        &self,
        repo: &str,
        digest: &Digest,
        data: Bytes,
    ) -> Result<(), RegistryError> {
        let size = data.len() as u64;
        self.push_blob(repo, digest, size, &BlobSource::Bytes(data), &|_| {})
            .await
    }

    async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        source: &BlobSource<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        checked_repo(repo)?;
        let mut attempt = 0;
        loop {
            match self.upload_once(repo, digest, size, source, progress).await {
                Err(err) if err.is_transient() && attempt < self.inner.opts.max_retries => {
                    let delay = self.backoff(attempt);
                    warn!(registry = %self.inner.registry, %digest, error = %err, ?delay, "upload failed, starting it again");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn upload_once(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        source: &BlobSource<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let sent = Arc::new(AtomicU64::new(0));
        let upload = async {
            if let Some(chunk) = self.inner.opts.upload_chunk_size.filter(|c| *c > 0) {
                match self
                    .upload_chunked(repo, digest, size, source, chunk, &sent)
                    .await?
                {
                    Chunked::Done => return Ok(()),
                    Chunked::Rejected => {
                        info!(registry = %self.inner.registry, "chunked upload rejected, uploading {digest} in one request")
                    }
                }
            }
            self.upload_monolithic(repo, digest, size, source, &sent)
                .await
        };
        with_progress(&sent, progress, upload).await
    }

    /// Opens an upload session and returns its location.
    async fn start_upload(&self, repo: &str, action: &str) -> Result<Url, RegistryError> {
        let url = self.url(repo, "blobs/uploads/")?;
        let scopes = [push_scope(repo)];
        let resp = self
            .execute(&scopes, action, Retry::Transient, || {
                Ok(self.inner.http.post(url.clone()).header(CONTENT_LENGTH, 0))
            })
            .await?;
        let resp = self
            .check(resp, &[StatusCode::ACCEPTED], action, || {
                format!("repository {repo}")
            })
            .await?;
        self.location(&resp, action)
    }

    async fn upload_monolithic(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        source: &BlobSource<'_>,
        sent: &Arc<AtomicU64>,
    ) -> Result<(), RegistryError> {
        let action = format!("upload blob {digest} to {repo}");
        let mut url = self.start_upload(repo, &action).await?;
        url.query_pairs_mut().append_pair("digest", digest);
        let scopes = [push_scope(repo)];
        let resp = self
            .execute(&scopes, &action, Retry::Never, || {
                sent.store(0, Ordering::Relaxed);
                Ok(self
                    .inner
                    .http
                    .put(url.clone())
                    .header(CONTENT_TYPE, OCTET_STREAM)
                    .header(CONTENT_LENGTH, size)
                    .body(source.body(0, size, sent)?))
            })
            .await?;
        self.check(resp, &[StatusCode::CREATED], &action, || {
            format!("repository {repo}")
        })
        .await?;
        Ok(())
    }

    async fn upload_chunked(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        source: &BlobSource<'_>,
        chunk: u64,
        sent: &Arc<AtomicU64>,
    ) -> Result<Chunked, RegistryError> {
        let action = format!("upload blob {digest} to {repo} in chunks");
        let scopes = [push_scope(repo)];
        let mut location = self.start_upload(repo, &action).await?;
        let mut offset = 0;
        let mut resyncs = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let result = self
                .execute(&scopes, &action, Retry::Never, || {
                    sent.store(offset, Ordering::Relaxed);
                    Ok(self
                        .inner
                        .http
                        .patch(location.clone())
                        .header(CONTENT_TYPE, OCTET_STREAM)
                        .header(CONTENT_RANGE, format!("{offset}-{}", offset + len - 1))
                        .header(CONTENT_LENGTH, len)
                        .body(source.body(offset, len, sent)?))
                })
                .await;
            let transient = match &result {
                Ok(resp) => is_transient_status(resp.status()),
                Err(err) => err.is_transient(),
            };
            if transient && resyncs < self.inner.opts.max_retries {
                let delay = result
                    .as_ref()
                    .ok()
                    .and_then(retry_after)
                    .unwrap_or_else(|| self.backoff(resyncs));
                warn!(registry = %self.inner.registry, %digest, offset, ?delay, "chunk upload failed, resuming");
                tokio::time::sleep(delay).await;
                resyncs += 1;
                (location, offset) = self.upload_status(repo, &location, &action).await?;
                continue;
            }
            let resp = result?;
            if offset == 0 && rejects_chunks(resp.status()) {
                self.cancel_upload(repo, location).await;
                return Ok(Chunked::Rejected);
            }
            let resp = self
                .check(
                    resp,
                    &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT],
                    &action,
                    || format!("repository {repo}"),
                )
                .await?;
            offset = match range_end(&resp) {
                Some(end) if end < size => end + 1,
                Some(_) => {
                    return Err(self.protocol(&action, "it reports more bytes than the blob has"));
                }
                None => offset + len,
            };
            location = self.location(&resp, &action).unwrap_or(location);
        }
        location.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .execute(&scopes, &action, Retry::Never, || {
                Ok(self
                    .inner
                    .http
                    .put(location.clone())
                    .header(CONTENT_LENGTH, 0))
            })
            .await?;
        self.check(resp, &[StatusCode::CREATED], &action, || {
            format!("repository {repo}")
        })
        .await?;
        Ok(Chunked::Done)
    }

    /// Asks how much of an upload the registry has received; returns the session's new location
    /// and the offset to continue from.
    async fn upload_status(
        &self,
        repo: &str,
        location: &Url,
        action: &str,
    ) -> Result<(Url, u64), RegistryError> {
        let scopes = [push_scope(repo)];
        let resp = self
            .execute(&scopes, action, Retry::Transient, || {
                Ok(self.inner.http.get(location.clone()))
            })
            .await?;
        let resp = self
            .check(
                resp,
                &[StatusCode::NO_CONTENT, StatusCode::OK],
                action,
                || "the upload session".to_owned(),
            )
            .await?;
        // distribution reports both "nothing" and "one byte" as 0-0; resending that byte is harmless.
        let offset = match header_str(&resp, RANGE) {
            Some(range) if range.trim().trim_start_matches("bytes=") == "0-0" => 0,
            _ => range_end(&resp).map_or(0, |end| end + 1),
        };
        let location = self
            .location(&resp, action)
            .unwrap_or_else(|_| location.clone());
        Ok((location, offset))
    }
}

/// Statuses with which registries refuse `PATCH` uploads.
fn rejects_chunks(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::RANGE_NOT_SATISFIABLE
            | StatusCode::NOT_IMPLEMENTED
    )
}

/// The last byte offset from a `Range: 0-<end>` (or `bytes=0-<end>`) header.
fn range_end(resp: &Response) -> Option<u64> {
    parse_range_end(header_str(resp, RANGE)?)
}

fn parse_range_end(range: &str) -> Option<u64> {
    let (_, end) = range.trim().trim_start_matches("bytes=").split_once('-')?;
    end.trim().parse().ok()
}

/// Runs `fut`, calling `progress` with the value of `sent` every [`PROGRESS_INTERVAL`] and at the end.
async fn with_progress<T>(
    sent: &AtomicU64,
    progress: &(dyn Fn(u64) + Send + Sync),
    fut: impl Future<Output = T>,
) -> T {
    tokio::pin!(fut);
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            out = &mut fut => {
                progress(sent.load(Ordering::Relaxed));
                return out;
            }
            _ = ticker.tick() => progress(sent.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        assert_eq!(parse_range_end("0-1023"), Some(1023));
        assert_eq!(parse_range_end("bytes=0-5"), Some(5));
        assert_eq!(parse_range_end("garbage"), None);
    }

    #[test]
    fn chunk_rejections() {
        assert!(rejects_chunks(StatusCode::RANGE_NOT_SATISFIABLE));
        assert!(rejects_chunks(StatusCode::BAD_REQUEST));
        assert!(!rejects_chunks(StatusCode::ACCEPTED));
        assert!(!rejects_chunks(StatusCode::SERVICE_UNAVAILABLE));
    }
}
