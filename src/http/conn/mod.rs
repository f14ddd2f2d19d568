//! The front end of every HTTP/1.1 connection: it reads each request head itself, then
//! answers the request with `sendfile` ([`crate::http::conn::fastpath`]) or hands exactly that request's
//! bytes to actix-http ([`crate::http::conn::handoff`]), one request at a time, for the connection's life.
//!
//! One reader frames every request ([`crate::http::conn::http1`]: the rules of the actix-http
//! `Cargo.lock` links, byte for byte), so the same bytes make the same requests whichever side
//! answers them, and one set of limits
//! bounds every connection:
//! - **keep-alive**: a connection idle [`KEEP_ALIVE`] between requests is closed;
//! - **head**: a request head must be complete [`HEAD_TIMEOUT`] after its first byte, however
//!   slowly it trickles in, on the first request of a connection or any later one; else the
//!   answer is `408 Request Timeout` and the connection closes;
//! - **send**: a client that accepts no response bytes for `send_timeout` is cut off
//!   (both sides: [`crate::http::conn::fastpath`]'s writes, [`crate::http::conn::handoff::ActixIo`]'s).
//!
//! Heads actix refuses (400, 431), and requests whose body lasts until the connection closes
//! (`Upgrade: websocket`, `CONNECT`), get the rest of the connection handed to actix as is.
//! Every other request is handed to actix alone, never with the bytes after it: actix-http
//! answers requests it has already read even after a response that closes the connection
//! (RFC 9112 §9.6 forbids it), so it must not read them.
//! With `fast_path = false` every connection is actix's from its first byte.
//!
//! Requests answered here are counted in the metrics and written to the access log like the
//! actix side's ([`crate::http::access_log`]), cut-short ones included, with the
//! body bytes actually handed to the kernel.
//!
//! While the node drains ([`crate::http::drain`]), a new request for anything but
//! `/_pkgstash/…` is answered `503` here, a response in progress ends its connection, and an
//! idle connection closes at once.

#[cfg(test)]
mod actix_parity;
pub(crate) mod fastpath;
pub(crate) mod handoff;
pub(crate) mod http1;
pub(crate) mod http1_body;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use bytes::Buf;
use tokio::net::TcpStream;

use crate::http::access_log::log_line;
use crate::http::conn::fastpath::Served;
use crate::http::conn::handoff::{ActixIo, Exchange, ReadSide};
use crate::http::conn::http1::{BodyKind, Frame, Head};
use crate::http::conn::http1_body::RequestBytes;
use crate::state::AppState;

/// An idle connection (no request in progress) is closed after this long (actix's default).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A request head must be complete this long after its first byte (actix's default
/// `client_request_timeout`, applied here to every request, not only a connection's first).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// After the last response, what the client still sends is read and dropped for at most this
/// long before the connection closes (so closing does not reset it before the client has
/// read that response).
const LINGER: Duration = Duration::from_secs(2);
/// ... and at most this many bytes.
const LINGER_MAX: usize = 1 << 20;

/// How the connection ends.
enum Close {
    /// At once (the client is gone, or a body was cut short).
    Now,
    /// After the last response: our side shut down, then a lingering read.
    Linger,
}

/// What the next bytes are.
enum NextHead {
    Head(Head),
    /// The client closed (or stayed idle for [`KEEP_ALIVE`]).
    Closed,
    /// The head did not complete within [`HEAD_TIMEOUT`].
    TimedOut,
    /// A head actix refuses: it answers.
    Refused,
}

/// Serve one accepted connection. `actix` runs actix-http's HTTP/1 dispatcher over an
/// [`ActixIo`] (until the dispatcher ends or, for one request, until its response is written).
pub async fn serve_connection<F, Fut, E>(stream: TcpStream, state: &AppState, actix: F)
where
    F: Fn(ActixIo, Option<SocketAddr>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let sock = Rc::new(stream);
    let read = Rc::new(RefCell::new(ReadSide::default()));
    let send_timeout = state.cfg.send_timeout;
    let whole = |sock: &Rc<TcpStream>| {
        let io = ActixIo::new(
            sock.clone(),
            read.clone(),
            Exchange::whole_connection(),
            send_timeout,
        );
        actix(io, peer)
    };
    if !state.cfg.fast_path {
        return log_end(whole(&sock).await);
    }
    let trusted = state.cfg.trusted_proxies.as_slice();
    // A new connection's first request is answered while draining (503, or the health
    // check); only connections that have served one close when idle.
    let mut served_one = false;
    let close = loop {
        let drain = served_one.then_some(&*state.drain);
        served_one = true;
        let head = match next_head(&sock, &read, drain).await {
            NextHead::Head(h) => h,
            NextHead::Closed => break Close::Now,
            NextHead::TimedOut => {
                request_timeout(&sock, peer, send_timeout).await;
                break Close::Linger;
            }
            NextHead::Refused => {
                log_end(whole(&sock).await);
                break Close::Linger;
            }
        };
        let client =
            crate::http::client_addr::of_head(peer, &read.borrow().buf[..head.len], trusted);
        if state.drain.is_draining() && crate::http::drain::refuses(&head.target) {
            refuse(&sock, &head, client, send_timeout).await;
            break Close::Linger;
        }
        if head.body == BodyKind::UntilClose {
            log_end(whole(&sock).await);
            break Close::Linger;
        }
        if let Some(mut plain) = crate::http::conn::fastpath::plain(&head, state) {
            let started = Instant::now();
            plain.close |= state.drain.is_draining();
            if let Some(served) = crate::http::conn::fastpath::serve(&sock, state, &plain).await {
                read.borrow_mut().buf.advance(head.len);
                account(state, client, &head, &served, started.elapsed());
                if let Some(e) = &served.error {
                    // A body cut short: closing the connection is how the client learns it.
                    log_cut_short(client, &head, e);
                    break Close::Now;
                }
                if plain.close || state.drain.is_draining() {
                    break Close::Linger;
                }
                continue;
            }
        }
        if !dispatch(&actix, &sock, &read, &head, peer, client, send_timeout).await
            || state.drain.is_draining()
        {
            break Close::Linger;
        }
    };
    finish(&sock, &read, close).await;
}

/// How actix's part of a connection ended (an error is the client's business: debug).
fn log_end<E: fmt::Display>(ended: Result<(), E>) {
    if let Err(e) = ended {
        log::debug!("connection ended with an error: {e}");
    }
}

/// A head that did not complete in time: `408 Request Timeout`, logged.
async fn request_timeout(sock: &TcpStream, peer: Option<SocketAddr>, send_timeout: Duration) {
    log_line(peer.map(|p| p.ip()), "-", 408, 0, Duration::ZERO, "-");
    let resp = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\ndate: {}\r\n\r\n",
        httpdate::fmt_http_date(SystemTime::now())
    );
    let _ = crate::http::conn::fastpath::write_all(sock, resp.as_bytes(), send_timeout).await;
}

/// Answer `head` with [`crate::http::drain::REFUSAL`] (the node is draining) and log it.
async fn refuse(sock: &TcpStream, head: &Head, client: Option<IpAddr>, send_timeout: Duration) {
    let sent = crate::http::conn::fastpath::write_all(
        sock,
        crate::http::drain::REFUSAL.as_bytes(),
        send_timeout,
    )
    .await;
    let body = crate::http::drain::REFUSAL_BODY.len() as u64;
    log_line(
        client,
        &format!("\"{}\"", head.request_line()),
        503,
        if sent.is_ok() { body } else { 0 },
        Duration::ZERO,
        "-",
    );
}

/// Read until the buffer starts with a complete head (or the connection ends). With `drain`,
/// an idle connection (no byte of a next head yet) closes when the node starts draining.
async fn next_head(
    sock: &TcpStream,
    read: &RefCell<ReadSide>,
    drain: Option<&crate::state::Drain>,
) -> NextHead {
    let mut deadline: Option<Instant> = None;
    loop {
        let started = {
            let r = read.borrow();
            match crate::http::conn::http1::frame(&r.buf) {
                Frame::Head(h) => return NextHead::Head(h),
                Frame::Invalid | Frame::TooLarge => return NextHead::Refused,
                Frame::Partial => {}
            }
            if r.eof {
                // Nothing more will come; a partial head is dropped (as actix does).
                return NextHead::Closed;
            }
            !r.buf.is_empty()
        };
        let ready = if started {
            let d = *deadline.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
            match tokio::time::timeout_at(d.into(), sock.readable()).await {
                Ok(r) => r,
                Err(_) => return NextHead::TimedOut,
            }
        } else {
            tokio::select! {
                r = tokio::time::timeout(KEEP_ALIVE, sock.readable()) => match r {
                    Ok(r) => r,
                    Err(_) => return NextHead::Closed,
                },
                () = async {
                    match drain {
                        Some(d) => d.started().await,
                        None => std::future::pending().await,
                    }
                } => return NextHead::Closed,
            }
        };
        if ready.is_err() {
            return NextHead::Closed;
        }
        let mut r = read.borrow_mut();
        r.buf.reserve(8192);
        match sock.try_read_buf(&mut r.buf) {
            Ok(0) => r.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return NextHead::Closed,
        }
    }
}

/// Hand `head`'s request (head and body) to actix and follow its response. Answers whether
/// the connection goes on.
async fn dispatch<F, Fut, E>(
    actix: &F,
    sock: &Rc<TcpStream>,
    read: &Rc<RefCell<ReadSide>>,
    head: &Head,
    peer: Option<SocketAddr>,
    client: Option<IpAddr>,
    send_timeout: Duration,
) -> bool
where
    F: Fn(ActixIo, Option<SocketAddr>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: fmt::Display,
{
    let exchange = Exchange::request(
        RequestBytes::new(head.len, head.body),
        head.method == "HEAD",
    );
    let ended = {
        let io = ActixIo::new(sock.clone(), read.clone(), exchange.clone(), send_timeout);
        let mut fut = std::pin::pin!(actix(io, peer));
        std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            // Complete: the dispatcher (waiting for a next request) is dropped.
            Poll::Pending if exchange.borrow().answered() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    };
    let ex = exchange.borrow();
    if ex.send_timed_out {
        log::info!(
            "{} \"{}\": {}: connection closed",
            ip(client),
            head.request_line(),
            crate::http::conn::handoff::send_timeout_error(send_timeout)
        );
    }
    match ended {
        Some(Err(e)) => {
            log::debug!("connection ended with an error: {e}");
            false
        }
        // The response is complete (actix waits for a next request, or ended the connection
        // itself): the connection goes on where the request's head keeps it, every byte of the
        // request went to actix and the response does not close it. actix-http 3.11.2 also
        // ends a connection, without saying so, when it answered before reading the body it
        // then read; actix alone answers the requests it already holds then (pipelined ones),
        // and the bytes after this request are the next request's: it is answered.
        _ if !ex.answered() => false,
        _ => {
            head.keep_alive()
                && ex.request.ended()
                && !ex.response.as_ref().is_some_and(|r| r.close)
        }
    }
}

/// Count and log a request answered here.
fn account(state: &AppState, client: Option<IpAddr>, head: &Head, served: &Served, took: Duration) {
    state.metrics.request(served.outcome);
    log_line(
        client,
        &format!("\"{}\"", head.request_line()),
        served.status,
        served.sent,
        took,
        served.outcome.as_str(),
    );
}

fn log_cut_short(client: Option<IpAddr>, head: &Head, e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::TimedOut {
        log::info!(
            "{} \"{}\": {e}: connection closed",
            ip(client),
            head.request_line()
        );
    } else {
        log::debug!(
            "{} \"{}\": connection closed: {e}",
            ip(client),
            head.request_line()
        );
    }
}

fn ip(client: Option<IpAddr>) -> String {
    client
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "-".into())
}

/// Close the connection.
async fn finish(sock: &TcpStream, read: &RefCell<ReadSide>, how: Close) {
    if matches!(how, Close::Now) || read.borrow().eof {
        return;
    }
    let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut dropped = 0usize;
    let mut chunk = vec![0u8; 16 * 1024];
    while dropped < LINGER_MAX {
        match tokio::time::timeout_at(deadline.into(), sock.readable()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        match sock.try_read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => dropped += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
