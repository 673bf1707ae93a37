//! Loopback ports for servers that tests start.

use std::net::{Ipv4Addr, TcpListener};

/// A port on 127.0.0.1 that was free a moment ago (another process may take it meanwhile).
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A TCP listener on 127.0.0.1 that never answers and counts who connected: the bait for an
/// image that tries to make QEMU connect somewhere (`nbd:127.0.0.1:<port>`).
pub struct Bait {
    listener: TcpListener,
}

impl Bait {
    /// Listens on a free port.
    pub fn new() -> std::io::Result<Bait> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        Ok(Bait { listener })
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// How many connections were made since the last call (the kernel completes them in the
    /// backlog whether or not anyone accepts).
    pub fn connections(&self) -> usize {
        std::iter::from_fn(|| self.listener.accept().ok()).count()
    }
}
