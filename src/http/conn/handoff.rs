//! The connection as actix-http sees it when the front end ([`crate::http::conn`]) hands it a
//! request: [`ActixIo`] reads exactly that request's bytes ([`RequestBytes`]: the bytes the
//! front end already read first, then the socket), writes straight to the socket, and
//! - follows the response actix writes ([`ResponseEnd`]), so the front end knows when it is
//!   complete, how many bytes left, and whether it closes the connection;
//! - gives up on a client that accepts no bytes for the send timeout (nginx's `send_timeout`):
//!   the write fails with `TimedOut` and actix drops the connection.
//!
//! One connection's front end and its `ActixIo`s run on one task (the actix worker's), so the
//! socket and the read buffer are shared with `Rc`.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http::conn::http1_body::{RequestBytes, ResponseEnd};

/// Bytes read from a client and not yet handed to anyone; shared by the front end and the
/// `ActixIo` of the request in progress.
#[derive(Debug, Default)]
pub struct ReadSide {
    pub buf: BytesMut,
    /// The client closed its side (read returned 0).
    pub eof: bool,
}

/// One request's exchange with actix, as the front end follows it.
#[derive(Debug)]
pub struct Exchange {
    pub request: RequestBytes,
    /// `None` when the whole connection is actix's (nothing to follow).
    pub response: Option<ResponseEnd>,
    /// Bytes written to the socket.
    pub written: u64,
    /// The send timeout struck.
    pub send_timed_out: bool,
}

impl Exchange {
    /// One request: a head of `head_len` bytes, then its body; `head_only`: a `HEAD`.
    pub fn request(request: RequestBytes, head_only: bool) -> Rc<RefCell<Exchange>> {
        Rc::new(RefCell::new(Exchange {
            request,
            response: Some(ResponseEnd::new(head_only)),
            written: 0,
            send_timed_out: false,
        }))
    }

    /// The rest of the connection: every byte, every response.
    pub fn whole_connection() -> Rc<RefCell<Exchange>> {
        Rc::new(RefCell::new(Exchange {
            request: RequestBytes::whole_connection(),
            response: None,
            written: 0,
            send_timed_out: false,
        }))
    }

    /// Is the response to the request complete?
    pub fn answered(&self) -> bool {
        self.response.as_ref().is_some_and(ResponseEnd::done)
    }
}

/// The I/O object handed to actix-http's HTTP/1 dispatcher.
pub struct ActixIo {
    sock: Rc<TcpStream>,
    read: Rc<RefCell<ReadSide>>,
    exchange: Rc<RefCell<Exchange>>,
    send_timeout: Duration,
    /// Armed while a write waits for the client.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ActixIo {
    pub fn new(
        sock: Rc<TcpStream>,
        read: Rc<RefCell<ReadSide>>,
        exchange: Rc<RefCell<Exchange>>,
        send_timeout: Duration,
    ) -> ActixIo {
        ActixIo {
            sock,
            read,
            exchange,
            send_timeout,
            stall: None,
        }
    }

    /// A write is blocked on the client: pending until the send timeout strikes.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.send_timeout;
        let timer = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.exchange.borrow_mut().send_timed_out = true;
        Poll::Ready(Err(send_timeout_error(limit)))
    }

    /// Write with `write` once the socket is writable (giving up after the send timeout);
    /// `wrote` records the `n` bytes that left.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
        wrote: impl FnOnce(&mut Self, usize),
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.sock.poll_write_ready(cx) {
                Poll::Pending => return self.stalled(cx),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            match write(&self.sock) {
                Ok(n) => {
                    wrote(self, n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// `n` bytes of `bufs` were written.
    fn wrote(&mut self, bufs: &[&[u8]], mut n: usize) {
        self.stall = None;
        let mut ex = self.exchange.borrow_mut();
        ex.written += n as u64;
        if let Some(resp) = ex.response.as_mut() {
            for b in bufs {
                if n == 0 {
                    break;
                }
                let k = n.min(b.len());
                resp.feed(&b[..k]);
                n -= k;
            }
        }
    }
}

/// The error a write fails with when the client accepted nothing for `limit`.
pub fn send_timeout_error(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "send timeout: the client accepted no bytes for {}",
            humantime::format_duration(limit)
        ),
    )
}

impl AsyncRead for ActixIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            {
                let mut read = this.read.borrow_mut();
                let mut ex = this.exchange.borrow_mut();
                if ex.request.ended() {
                    // What follows is the next request's: the front end reads it, once this
                    // response is complete (it stops polling actix then).
                    return Poll::Pending;
                }
                if !read.buf.is_empty() {
                    let avail = read.buf.len().min(out.remaining());
                    let n = ex.request.take(&read.buf[..avail]);
                    out.put_slice(&read.buf[..n]);
                    read.buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                if read.eof {
                    return Poll::Ready(Ok(()));
                }
            }
            match this.sock.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let mut read = this.read.borrow_mut();
            read.buf.reserve(8192);
            match this.sock.try_read_buf(&mut read.buf) {
                Ok(0) => read.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ActixIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(
            cx,
            |sock| sock.try_write(buf),
            |this, n| this.wrote(&[buf], n),
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(
            cx,
            |sock| sock.try_write_vectored(bufs),
            |this, n| {
                let slices: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
                this.wrote(&slices, n);
            },
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // actix is done with the connection; the front end closes it (after a lingering read).
        Poll::Ready(Ok(()))
    }
}
