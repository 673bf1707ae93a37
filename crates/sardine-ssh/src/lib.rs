//! SSH to guests (russh): run commands and scripts, stream output, password or key auth.
//!
//! Used by `sarde ssh`, by the GitLab executor (prepare waits for a login with
//! [`Session::connect_with_retry`]; run streams the job script's output with
//! [`Session::exec_cancellable`]) and by the test bed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sardine_ssh::SshError> {
//! use std::time::Duration;
//! use sardine_ssh::{Auth, Session, Target};
//!
//! let target = Target {
//!     host: "10.213.7.50".into(),
//!     port: 22,
//!     user: "root".into(),
//!     auth: vec![Auth::Password("secret".into())],
//!     host_key: None,
//! };
//! let session = Session::connect_with_retry(&target, Duration::from_secs(60)).await?;
//! let status = session
//!     .exec("bash -s", Some(b"echo hello"), &mut tokio::io::stdout(), &mut tokio::io::stderr())
//!     .await?;
//! println!("{status}");
//! session.close().await?;
//! # Ok(())
//! # }
//! ```

mod error;
mod exec;
mod quote;
mod session;
mod shell;
mod target;

pub use error::SshError;
pub use exec::{ExitStatus, Output};
pub use quote::{shell_join, shell_quote};
pub use session::Session;
pub use shell::{ShellIo, Terminal};
pub use target::{Auth, DEFAULT_PORT, Login, Target};
