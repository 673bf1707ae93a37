//! Interactive shells: [`Session::shell`] runs the remote user's login shell on a
//! pseudo-terminal, as `ssh HOST` without a command does.
//!
//! The caller owns the local terminal (raw mode, its size, `SIGWINCH`): this module only moves
//! keystrokes, output and window sizes over the channel. On a pseudo-terminal the remote side
//! merges stderr into the terminal's output, so there is one output stream.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::sync::mpsc;
use tracing::debug;

use crate::exec::{ExitStatus, Flow, Run, handle_msg};
use crate::{Session, SshError};

/// The local terminal, as the remote pseudo-terminal should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// The terminal type (`$TERM`, e.g. `xterm-256color`).
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

/// Where an interactive shell's bytes come from and go to.
pub struct ShellIo<'a, I> {
    /// The user's keystrokes (the local terminal in raw mode).
    pub input: I,
    /// The terminal's output.
    pub output: &'a mut (dyn AsyncWrite + Unpin + Send),
    /// New window sizes (columns, rows) as the local terminal is resized.
    pub resizes: mpsc::Receiver<(u32, u32)>,
}

impl Session {
    /// Runs the remote user's login shell on a pseudo-terminal like `terminal`, until it exits
    /// (its status) or `cancel` resolves ([`SshError::Cancelled`], the channel closed).
    ///
    /// Input is sent as it is read; end of input is passed on as end-of-file.
    pub async fn shell<I, F>(
        &self,
        terminal: &Terminal,
        io: ShellIo<'_, I>,
        cancel: F,
    ) -> Result<ExitStatus, SshError>
    where
        I: AsyncRead + Unpin,
        F: Future<Output = ()>,
    {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(SshError::Protocol)?;
        channel
            .request_pty(
                true,
                &terminal.term,
                terminal.cols,
                terminal.rows,
                0,
                0,
                &[],
            )
            .await
            .map_err(SshError::Protocol)?;
        channel
            .request_shell(true)
            .await
            .map_err(SshError::Protocol)?;
        debug!(host = %self.host, term = %terminal.term, "interactive shell started");
        let (mut reader, writer) = channel.split();
        let ShellIo {
            mut input,
            output,
            mut resizes,
        } = io;
        let mut discarded = tokio::io::sink();
        let mut run = Run {
            stdout: output,
            stderr: &mut discarded,
            status: None,
        };
        let mut buffer = vec![0u8; 4096];
        let mut reading = true;
        tokio::pin!(cancel);
        loop {
            tokio::select! {
                biased;
                () = &mut cancel => {
                    let _ = writer.close().await;
                    return Err(SshError::Cancelled);
                }
                read = input.read(&mut buffer), if reading => match read {
                    Ok(0) | Err(_) => {
                        reading = false;
                        let _ = writer.eof().await;
                    }
                    Ok(n) => writer.data(&buffer[..n]).await.map_err(SshError::Protocol)?,
                },
                Some((cols, rows)) = resizes.recv() => {
                    let _ = writer.window_change(cols, rows, 0, 0).await;
                }
                msg = reader.wait() => match msg {
                    None => break,
                    Some(msg) => {
                        if handle_msg(msg, &mut run, "a login shell").await? == Flow::Closed {
                            break;
                        }
                    }
                },
            }
        }
        run.status.ok_or(SshError::NoExitStatus)
    }
}
