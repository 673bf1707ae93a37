//! Advisory file locks (`flock` semantics via `File::lock`).
//!
//! A lock belongs to an open file and is released when the [`LockGuard`] is dropped or the
//! process dies, so a killed `sarde` never blocks anybody. Locks taken through two different
//! guards conflict even within one process, so never take the same lock twice on one thread.

use std::fs::TryLockError;
use std::io;
use std::path::Path;

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: fs_err::File,
}

impl LockGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Which kind of lock to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Shared,
    Exclusive,
}

/// Takes an exclusive lock on `path` (created, with its parent directories, if missing),
/// waiting as long as needed; logs once if it has to wait.
pub fn lock_exclusive(path: &Path) -> io::Result<LockGuard> {
    lock(path, Mode::Exclusive)
}

/// Takes a shared lock on `path` (created if missing), waiting as long as needed.
pub fn lock_shared(path: &Path) -> io::Result<LockGuard> {
    lock(path, Mode::Shared)
}

/// Takes an exclusive lock on `path` if nobody holds it; `Ok(None)` if it is busy.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<LockGuard>> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LockGuard { file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn lock(path: &Path, mode: Mode) -> io::Result<LockGuard> {
    let file = open_lock_file(path)?;
    let attempt = match mode {
        Mode::Shared => file.try_lock_shared(),
        Mode::Exclusive => file.try_lock(),
    };
    match attempt {
        Ok(()) => return Ok(LockGuard { file }),
        Err(TryLockError::Error(e)) => return Err(e),
        Err(TryLockError::WouldBlock) => {
            tracing::info!(
                "waiting for lock on {} (another sarde process is using it)",
                path.display()
            );
        }
    }
    match mode {
        Mode::Shared => file.lock_shared()?,
        Mode::Exclusive => file.lock()?,
    }
    Ok(LockGuard { file })
}

fn open_lock_file(path: &Path) -> io::Result<fs_err::File> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.lock");
        let guard = lock_exclusive(&path).unwrap();
        assert_eq!(guard.path(), path);
        assert!(try_lock_exclusive(&path).unwrap().is_none());
        drop(guard);
        assert!(try_lock_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn shared_locks_coexist_but_block_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.lock");
        let one = lock_shared(&path).unwrap();
        let two = lock_shared(&path).unwrap();
        assert!(try_lock_exclusive(&path).unwrap().is_none());
        drop((one, two));
        assert!(try_lock_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn waiting_lock_proceeds_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.lock");
        let guard = lock_exclusive(&path).unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || lock_exclusive(&path).map(|_| ()))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished());
        drop(guard);
        waiter.join().unwrap().unwrap();
    }
}
