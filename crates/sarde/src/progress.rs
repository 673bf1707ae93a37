//! Progress bars on stderr for long operations, silent when stderr is not a terminal or with
//! `-q`. The libraries only count bytes; this is the one place that draws.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One progress bar, reused phase after phase (or hidden).
pub struct Reporter {
    bar: ProgressBar,
    /// Sizes of the blobs being transferred, to take skipped ones off the total.
    blobs: Mutex<HashMap<sardine_vm::Digest, u64>>,
}

impl Reporter {
    /// A bar on stderr, hidden when stderr is not a terminal or when `quiet`.
    pub fn new(quiet: bool) -> Reporter {
        let visible = !quiet && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template(
            "{msg:30!} {bar:30} {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec:>12} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Reporter {
            bar,
            blobs: Mutex::default(),
        }
    }
}

impl sardine_vm::Progress for Reporter {
    fn start(&self, what: &str, total: u64) {
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_message(what.to_owned());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl sardine_vm::TransferProgress for Reporter {
    fn start_blob(&self, digest: &sardine_vm::Digest, size: u64) {
        if let Ok(mut blobs) = self.blobs.lock() {
            blobs.insert(digest.clone(), size);
        }
        self.bar.inc_length(size);
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish_blob(&self, digest: &sardine_vm::Digest, skipped: bool) {
        let size = self
            .blobs
            .lock()
            .ok()
            .and_then(|mut blobs| blobs.remove(digest));
        if let (true, Some(size)) = (skipped, size) {
            // Nothing had to move: it does not count towards the bytes to transfer.
            let length = self.bar.length().unwrap_or(0);
            self.bar.set_length(length.saturating_sub(size));
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
