//! Closing idle connections.
//!
//! Each accepted connection is wrapped in an [`IdleTimeout`]: when no byte has been read or
//! written for [`ServerOptions::idle_timeout`](super::ServerOptions) (10 minutes by default)
//! the connection is closed — a client that connected and went quiet, or never spoke HTTP/2
//! at all, no longer holds a socket forever. A connection carrying an open log tail
//! (`TailRobotPartLogs`, which may rightly be silent for hours) is never idle: the tail
//! registers itself in [`OpenStreams`] for as long as it lasts.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Long-lived streams open per peer address (one address per connection).
#[derive(Debug, Default)]
pub struct OpenStreams {
    by_peer: Mutex<HashMap<SocketAddr, usize>>,
}

/// Keeps one stream registered until dropped.
pub struct StreamGuard {
    streams: Arc<OpenStreams>,
    peer: SocketAddr,
}

impl OpenStreams {
    /// Registers a stream on `peer`'s connection until the guard is dropped.
    pub fn open(self: &Arc<Self>, peer: SocketAddr) -> StreamGuard {
        if let Ok(mut m) = self.by_peer.lock() {
            *m.entry(peer).or_default() += 1;
        }
        StreamGuard {
            streams: Arc::clone(self),
            peer,
        }
    }

    /// Whether `peer`'s connection carries an open stream.
    pub fn busy(&self, peer: SocketAddr) -> bool {
        self.by_peer
            .lock()
            .is_ok_and(|m| m.get(&peer).is_some_and(|n| *n > 0))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.streams.by_peer.lock()
            && let Some(n) = m.get_mut(&self.peer)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.peer);
            }
        }
    }
}

/// A connection that fails its reads once it has been idle for `idle` (see the module docs),
/// which makes the server drop it.
pub struct IdleTimeout<IO> {
    inner: IO,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    peer: Option<SocketAddr>,
    streams: Arc<OpenStreams>,
}

impl<IO> IdleTimeout<IO> {
    /// Wraps `inner` (the connection from `peer`).
    pub fn new(
        inner: IO,
        idle: Duration,
        peer: Option<SocketAddr>,
        streams: Arc<OpenStreams>,
    ) -> Self {
        IdleTimeout {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            peer,
            streams,
        }
    }

    fn touch(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.idle);
    }

    /// Whether the idle time is up (re-arming it when a stream keeps the connection busy).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if self.peer.is_some_and(|p| self.streams.busy(p)) {
            self.touch();
            // Register the re-armed timer with the task.
            let _ = self.timer.as_mut().poll(cx);
            return false;
        }
        true
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for IdleTimeout<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for IdleTimeout<tokio::net::TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
        let streams = Arc::new(OpenStreams::default());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let (a, mut b) = tokio::io::duplex(64);
        let mut conn = IdleTimeout::new(
            a,
            Duration::from_secs(600),
            Some(peer),
            Arc::clone(&streams),
        );
        // Traffic keeps it open.
        b.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
        // An open stream keeps it open past the idle time.
        let guard = streams.open(peer);
        let read = tokio::time::timeout(Duration::from_secs(1800), conn.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting: the stream keeps it open");
        drop(guard);
        // Without one, it is closed once idle.
        let err = conn.read(&mut buf).await.expect_err("closed when idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
