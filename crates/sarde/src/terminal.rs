//! The local terminal for interactive shells (`sarde ssh VM`, `sarde run IMAGE` without a
//! command): raw mode while the shell runs, the terminal's type and size, and its resizes.

use std::future::Future;
use std::io::IsTerminal as _;

use sardine_ssh::{ExitStatus, Session, ShellIo, SshError, Terminal};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Whether sarde's stdin and stdout are a terminal (a person is typing).
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Runs the remote login shell of `session` on a pseudo-terminal as large as ours, with our
/// terminal in raw mode until it ends, or until `cancel` resolves.
pub async fn shell(
    session: &Session,
    cancel: impl Future<Output = ()>,
) -> Result<ExitStatus, SshError> {
    let (cols, rows) = size();
    let terminal = Terminal {
        term: std::env::var("TERM").unwrap_or_else(|_| "xterm".to_owned()),
        cols,
        rows,
    };
    let raw = RawMode::enable();
    if let Err(e) = &raw {
        tracing::warn!("cannot put the terminal in raw mode: {e}");
    }
    let mut output = tokio::io::stdout();
    let io = ShellIo {
        input: tokio::io::stdin(),
        output: &mut output,
        resizes: resizes(),
    };
    let status = session.shell(&terminal, io, cancel).await;
    drop(raw);
    status
}

/// Our terminal's size (columns, rows); 80x24 when it cannot be asked.
fn size() -> (u32, u32) {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let asked = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if asked != 0 || size.ws_col == 0 || size.ws_row == 0 {
        return (80, 24);
    }
    (u32::from(size.ws_col), u32::from(size.ws_row))
}

/// The new size at every SIGWINCH.
fn resizes() -> mpsc::Receiver<(u32, u32)> {
    let (sender, receiver) = mpsc::channel(4);
    if let Ok(mut winch) = signal(SignalKind::window_change()) {
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                if sender.send(size()).await.is_err() {
                    break;
                }
            }
        });
    }
    receiver
}

/// The terminal in raw mode (keys go to the remote shell as typed, Ctrl-C included); the
/// previous mode comes back when this is dropped.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enable() -> std::io::Result<RawMode> {
        // SAFETY: tcgetattr fills the termios we pass; cfmakeraw and tcsetattr read it.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the termios that tcgetattr gave us.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}
