//! Ports of a run's guest forwarded from the host (`-p [HOSTADDR:]HOSTPORT:GUESTPORT`): a TCP
//! listener on the host (loopback by default) whose connections are relayed to the guest.
//!
//! The guest is on a libvirt network that the host reaches, so plain relaying is enough (no
//! QEMU user networking, whose forwarding lvh uses and which costs every packet a trip through
//! QEMU's slirp).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A forwarded port; relaying stops when it is dropped.
#[derive(Debug)]
pub struct Forward {
    /// Where the host listens.
    pub listen: SocketAddr,
    /// Where connections go.
    pub guest: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `listen` and relays every connection to `guest` (in both directions, until
/// either side closes), on the current tokio runtime.
pub async fn forward(listen: SocketAddr, guest: SocketAddr) -> std::io::Result<Forward> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {listen} to forward to {guest}: {e}"),
        )
    })?;
    let listen = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Err(e) = relay(client, guest).await {
                    tracing::debug!("forwarded connection from {peer} to {guest}: {e}");
                }
            });
        }
    });
    Ok(Forward {
        listen,
        guest,
        task,
    })
}

async fn relay(mut client: TcpStream, guest: SocketAddr) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(guest).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_go_both_ways() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            socket.read_exact(&mut buf).await.unwrap();
            socket.write_all(&buf).await.unwrap();
        });
        let forward = forward("127.0.0.1:0".parse().unwrap(), echo_addr)
            .await
            .unwrap();
        let mut client = TcpStream::connect(forward.listen).await.unwrap();
        client.write_all(b"\x00\xffab\n").await.unwrap();
        let mut back = [0u8; 5];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"\x00\xffab\n");
    }
}
