//! The main listener, counting connections for the metrics.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::{Listener, ListenerExt, TapIo};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::{ConnectionGuard, Metrics};

/// A TCP listener whose connections are counted while open.
#[derive(Debug)]
pub(crate) struct CountConnections {
    inner: TcpListener,
    metrics: Arc<Metrics>,
}

impl CountConnections {
    /// Wraps `inner`. The no-op tap gives the wrapper axum's `ConnectInfo`
    /// of the peer address (implemented for tapped listeners).
    pub(crate) fn new(
        inner: TcpListener,
        metrics: Arc<Metrics>,
    ) -> TapIo<Self, fn(&mut CountedStream)> {
        Self { inner, metrics }.tap_io(untouched as fn(&mut CountedStream))
    }
}

/// The tap of [`CountConnections::new`]: leaves the connection as it is.
fn untouched(_: &mut CountedStream) {}

impl Listener for CountConnections {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let guard = self.metrics.connection_opened();
        (
            CountedStream {
                inner: stream,
                _guard: guard,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

pin_project! {
    /// A connection, counted as open until dropped.
    #[derive(Debug)]
    pub(crate) struct CountedStream {
        #[pin]
        inner: TcpStream,
        _guard: ConnectionGuard,
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
