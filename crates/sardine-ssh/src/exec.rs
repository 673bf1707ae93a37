//! Running commands: [`Session::exec`], [`Session::exec_cancellable`] and [`Session::output`].
//!
//! Output is copied byte for byte to the caller's writers as it arrives (nothing is decoded as
//! text, so any script content and any output survives, unlike sardinecake 0.4.2's text-mode
//! upload, W16). Standard input is fed concurrently with reading the output, so a command that
//! writes a lot before reading all of its input cannot deadlock against the SSH window.

use std::future::Future;
use std::time::Duration;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::debug;

use crate::{Session, SshError};

/// How long a cancelled command may take to exit after SIGTERM before the channel is closed.
const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// SSH extended data type code for stderr (RFC 4254, section 5.2).
const EXTENDED_DATA_STDERR: u32 = 1;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this status code.
    Code(u32),
    /// It was killed by this signal (name without the `SIG` prefix, e.g. `"TERM"`).
    Signal(String),
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }

    /// The exit code, or `None` when a signal killed the command.
    pub fn code(&self) -> Option<i32> {
        match self {
            ExitStatus::Code(code) => i32::try_from(*code).ok(),
            ExitStatus::Signal(_) => None,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code {code}"),
            ExitStatus::Signal(name) => write!(f, "killed by signal {name}"),
        }
    }
}

/// Captured result of [`Session::output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How the command ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

type Writer<'a> = &'a mut (dyn AsyncWrite + Unpin + Send);

/// Where output goes, and what we learned about the command so far.
pub(crate) struct Run<'a> {
    pub(crate) stdout: Writer<'a>,
    pub(crate) stderr: Writer<'a>,
    pub(crate) status: Option<ExitStatus>,
}

/// Whether the channel is still open after a message.
#[derive(PartialEq, Eq)]
pub(crate) enum Flow {
    Open,
    Closed,
}

/// Why [`pump`] stopped.
enum Stop {
    /// The channel closed: the command is over.
    Closed,
    /// The caller's cancel future resolved first.
    Cancelled,
}

impl Session {
    /// Runs `command` through the remote user's shell, without a pty.
    ///
    /// `stdin`, if given, is sent to the command followed by end-of-file; without it the
    /// command sees end-of-file at once. stdout and stderr are copied to the given writers as
    /// data arrives (and flushed). Returns how the command ended; a channel that closes without
    /// an exit status gives [`SshError::NoExitStatus`].
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        stdout: Writer<'_>,
        stderr: Writer<'_>,
    ) -> Result<ExitStatus, SshError> {
        self.exec_cancellable(command, stdin, stdout, stderr, std::future::pending())
            .await
    }

    /// Like [`Session::exec`], but when `cancel` resolves first, sends SIGTERM to the remote
    /// command, waits a little (up to 2 s) for it to exit while still copying its output, closes
    /// the channel and returns [`SshError::Cancelled`].
    ///
    /// The signal reaches only the process the SSH server started: the remote user's shell
    /// running `command`. bash and busybox sh `exec` a single simple command, so it gets the
    /// signal; dash forks it, and then only the shell dies. Callers that need the signal to
    /// reach their program should send `exec PROGRAM ...`; children that a script started may
    /// still outlive it (guests are throwaway clones that are destroyed afterwards).
    pub async fn exec_cancellable<F>(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        stdout: Writer<'_>,
        stderr: Writer<'_>,
        cancel: F,
    ) -> Result<ExitStatus, SshError>
    where
        F: Future<Output = ()>,
    {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(SshError::Protocol)?;
        debug!(host = %self.host, command, "running remote command");
        channel
            .exec(true, command)
            .await
            .map_err(SshError::Protocol)?;
        let (mut reader, writer) = channel.split();
        let mut run = Run {
            stdout,
            stderr,
            status: None,
        };
        let outcome = pump(&writer, &mut reader, &mut run, command, stdin, cancel).await;
        match outcome {
            Ok(Stop::Closed) => {}
            Ok(Stop::Cancelled) => {
                return cancel_remote(&writer, &mut reader, &mut run, command).await;
            }
            Err(err) => {
                close_quietly(&writer).await;
                return Err(err);
            }
        }
        debug!(host = %self.host, command, status = ?run.status, "remote command finished");
        run.status.ok_or(SshError::NoExitStatus)
    }

    /// Runs `command` (no stdin) and captures its output. Meant for tests and small tools;
    /// use [`Session::exec`] to stream big output.
    pub async fn output(&self, command: &str) -> Result<Output, SshError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self.exec(command, None, &mut stdout, &mut stderr).await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Feeds stdin and copies output until the channel closes or `cancel` resolves.
async fn pump<F: Future<Output = ()>>(
    writer: &ChannelWriteHalf<Msg>,
    reader: &mut ChannelReadHalf,
    run: &mut Run<'_>,
    command: &str,
    stdin: Option<&[u8]>,
    cancel: F,
) -> Result<Stop, SshError> {
    let feed = feed_stdin(writer, stdin);
    tokio::pin!(feed, cancel);
    let mut feeding = true;
    loop {
        tokio::select! {
            biased;
            () = &mut cancel => return Ok(Stop::Cancelled),
            result = &mut feed, if feeding => {
                feeding = false;
                if let Err(err) = result {
                    // The command may exit without reading its input; its status tells the rest.
                    debug!(command, error = %err, "could not send all of stdin");
                }
            }
            msg = reader.wait() => match msg {
                None => return Ok(Stop::Closed),
                Some(msg) => {
                    if handle_msg(msg, run, command).await? == Flow::Closed {
                        return Ok(Stop::Closed);
                    }
                }
            },
        }
    }
}

async fn feed_stdin(
    writer: &ChannelWriteHalf<Msg>,
    stdin: Option<&[u8]>,
) -> Result<(), russh::Error> {
    if let Some(bytes) = stdin {
        writer.data(bytes).await?;
    }
    writer.eof().await
}

/// Applies one channel message: copies output, records the exit status.
pub(crate) async fn handle_msg(
    msg: ChannelMsg,
    run: &mut Run<'_>,
    command: &str,
) -> Result<Flow, SshError> {
    match msg {
        ChannelMsg::Data { data } => write_chunk(&mut *run.stdout, &data).await?,
        ChannelMsg::ExtendedData { data, ext } if ext == EXTENDED_DATA_STDERR => {
            write_chunk(&mut *run.stderr, &data).await?;
        }
        ChannelMsg::ExitStatus { exit_status } => run.status = Some(ExitStatus::Code(exit_status)),
        ChannelMsg::ExitSignal {
            signal_name,
            core_dumped,
            error_message,
            ..
        } => {
            debug!(command, signal = ?signal_name, core_dumped, error_message, "remote command killed by a signal");
            run.status = Some(ExitStatus::Signal(signal_name_of(&signal_name)));
        }
        ChannelMsg::Failure => {
            return Err(SshError::ExecRejected {
                command: command.to_owned(),
            });
        }
        ChannelMsg::Close => return Ok(Flow::Closed),
        _ => {}
    }
    Ok(Flow::Open)
}

async fn write_chunk(
    out: &mut (dyn AsyncWrite + Unpin + Send),
    data: &[u8],
) -> Result<(), SshError> {
    out.write_all(data).await.map_err(SshError::LocalWrite)?;
    out.flush().await.map_err(SshError::LocalWrite)
}

/// Sends SIGTERM, gives the command [`CANCEL_GRACE`] to exit (still copying its output), then
/// closes the channel.
async fn cancel_remote(
    writer: &ChannelWriteHalf<Msg>,
    reader: &mut ChannelReadHalf,
    run: &mut Run<'_>,
    command: &str,
) -> Result<ExitStatus, SshError> {
    debug!(command, "cancelling remote command with SIGTERM");
    if let Err(err) = writer.signal(Sig::TERM).await {
        debug!(command, error = %err, "could not send SIGTERM to the remote command");
    }
    let drain = async {
        while let Some(msg) = reader.wait().await {
            match handle_msg(msg, run, command).await {
                Ok(Flow::Open) if run.status.is_none() => {}
                _ => break,
            }
        }
    };
    if tokio::time::timeout(CANCEL_GRACE, drain).await.is_err() {
        debug!(
            command,
            "remote command did not exit within {CANCEL_GRACE:?} of SIGTERM"
        );
    }
    close_quietly(writer).await;
    Err(SshError::Cancelled)
}

/// Closes the channel; a failure only means it is already gone.
async fn close_quietly(writer: &ChannelWriteHalf<Msg>) {
    if let Err(err) = writer.close().await {
        debug!(error = %err, "could not close the SSH channel");
    }
}

/// The signal's name as the SSH protocol spells it (without `SIG`).
fn signal_name_of(sig: &Sig) -> String {
    let name = match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_success_and_code() {
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Code(3).success());
        assert_eq!(ExitStatus::Code(3).code(), Some(3));
        assert_eq!(ExitStatus::Code(255).code(), Some(255));
        assert!(!ExitStatus::Signal("TERM".into()).success());
        assert_eq!(ExitStatus::Signal("TERM".into()).code(), None);
    }

    #[test]
    fn exit_status_display() {
        assert_eq!(ExitStatus::Code(3).to_string(), "exit code 3");
        assert_eq!(
            ExitStatus::Signal("KILL".into()).to_string(),
            "killed by signal KILL"
        );
    }

    #[test]
    fn signal_names_have_no_sig_prefix() {
        assert_eq!(signal_name_of(&Sig::TERM), "TERM");
        assert_eq!(signal_name_of(&Sig::KILL), "KILL");
        assert_eq!(signal_name_of(&Sig::Custom("USR2".into())), "USR2");
    }
}
