//! Connection limits, in front of poem's accept loop: a cap on open
//! connections, back-off when `accept` fails (at the fd limit it fails at
//! once, and poem's loop would retry it on a full core), and per-connection
//! deadlines enforced in the socket itself:
//!
//! - **header**: from a request's first byte to the end of its head
//!   (`\r\n\r\n`): a slowloris that trickles a header line every few
//!   seconds is closed when it runs out;
//! - **body**: from the end of the head until the response starts,
//!   restarted by every chunk of body that arrives: a body that stalls is
//!   cut off. It also bounds how long a handler may take to start its
//!   response while the client's socket is read, so it must exceed the
//!   slowest handler;
//! - **idle**: a kept-alive connection with no request in flight (and a
//!   new one that sends nothing).
//!
//! The connection cap is a semaphore: at the cap, `accept` waits for a
//! connection to close instead of taking more (new clients wait in the
//! kernel's backlog). The values come from `service.limits`.

use crate::manifest::HttpMethod;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The deadlines and the cap (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header: Duration,
    pub body: Duration,
    pub idle: Duration,
    pub max_connections: usize,
}

/// Shortest and longest wait after a failed `accept`.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the acceptor counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct AcceptCounts {
    /// `accept` calls that failed (e.g. EMFILE at the fd limit).
    pub accept_errors: AtomicU64,
    /// Connections closed because a deadline passed.
    pub timed_out: AtomicU64,
    /// Told of each request hyper refused before routing.
    pub on_reject: OnReject,
}

/// A request that hyper answered itself, before it reached a route: a URI
/// too long (414), a head too large (431) or a malformed request (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The request's method, if it is one a route may serve (else `None`).
    pub method: Option<HttpMethod>,
    pub status: u16,
    pub peer: Option<std::net::SocketAddr>,
}

/// Where [`Rejected`] requests are reported (set once, at start-up).
#[derive(Default)]
pub struct OnReject(std::sync::OnceLock<Box<dyn Fn(Rejected) + Send + Sync>>);

impl OnReject {
    pub fn set(&self, f: impl Fn(Rejected) + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(f));
    }
    fn report(&self, r: Rejected) {
        if let Some(f) = self.0.get() {
            f(r);
        }
    }
}

impl std::fmt::Debug for OnReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "OnReject(set)"
        } else {
            "OnReject(unset)"
        })
    }
}

/// The method a request head starts with, if a route may serve it.
fn method_of(head: &[u8]) -> Option<HttpMethod> {
    let token = head.split(|&b| b == b' ').next()?;
    HttpMethod::from_token(token)
}

/// The status of a response head that hyper wrote itself: a 4xx without
/// the `x-request-id` every routed response carries.
fn hyper_rejection(head: &[u8]) -> Option<u16> {
    if head.len() < 12 || !head.starts_with(b"HTTP/1.") || head[9] != b'4' {
        return None;
    }
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let routed = head[..end]
        .windows(14)
        .any(|w| w.eq_ignore_ascii_case(b"x-request-id: "));
    if routed {
        return None;
    }
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// An acceptor with the cap, the back-off and the deadlines.
pub struct Guarded<A> {
    inner: A,
    limits: Limits,
    slots: Arc<Semaphore>,
    backoff: Duration,
    counts: Arc<AcceptCounts>,
}

impl<A> Guarded<A> {
    pub fn new(inner: A, limits: Limits, counts: Arc<AcceptCounts>) -> Self {
        Guarded {
            inner,
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            backoff: BACKOFF_MIN,
            counts,
        }
    }
}

impl<A: Acceptor> Acceptor for Guarded<A> {
    type Io = Deadlines<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        // At the cap, wait for a connection to close.
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("connection slots closed"))?;
        loop {
            match self.inner.accept().await {
                Ok((io, local, remote, scheme)) => {
                    self.backoff = BACKOFF_MIN;
                    let mut io = Deadlines::new(io, self.limits, permit, self.counts.clone());
                    io.peer = remote.as_socket_addr().copied();
                    return Ok((io, local, remote, scheme));
                }
                Err(e) => {
                    let n = self.counts.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if n == 0 || self.backoff == BACKOFF_MAX {
                        tracing::warn!(
                            target: "telltale::server",
                            error = %e,
                            retry_ms = self.backoff.as_millis() as u64,
                            "cannot accept a connection; backing off"
                        );
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Where a connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in flight: the idle deadline runs.
    Idle,
    /// Reading a request's head; `matched` bytes of `\r\n\r\n` seen so far.
    Head { matched: u8 },
    /// The head is in; the body deadline runs until the response starts.
    Body,
    /// The response is being written: no read deadline.
    Responding,
}

/// A socket whose reads fail with `TimedOut` once its phase's deadline
/// passes (hyper then closes the connection); holds a connection slot.
pub struct Deadlines<Io> {
    io: Io,
    limits: Limits,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
    counts: Arc<AcceptCounts>,
    /// The first bytes of the current request's head (its method).
    start: [u8; 8],
    start_len: u8,
    peer: Option<std::net::SocketAddr>,
    _slot: OwnedSemaphorePermit,
}

impl<Io> Deadlines<Io> {
    fn new(io: Io, limits: Limits, slot: OwnedSemaphorePermit, counts: Arc<AcceptCounts>) -> Self {
        Deadlines {
            io,
            limits,
            phase: Phase::Idle,
            timer: Box::pin(tokio::time::sleep(limits.idle)),
            counts,
            start: [0; 8],
            start_len: 0,
            peer: None,
            _slot: slot,
        }
    }

    fn enter(&mut self, phase: Phase) {
        let d = match phase {
            Phase::Idle => self.limits.idle,
            Phase::Head { .. } => self.limits.header,
            Phase::Body => self.limits.body,
            Phase::Responding => {
                self.phase = phase;
                return;
            }
        };
        if std::mem::discriminant(&self.phase) != std::mem::discriminant(&phase) {
            self.timer.as_mut().reset(Instant::now() + d);
        }
        self.phase = phase;
    }

    /// A response starts with `head`: one hyper wrote itself (a request
    /// refused before routing) is reported.
    fn responding(&mut self, head: &[u8]) {
        if let Some(status) = hyper_rejection(head) {
            let method = match self.phase {
                Phase::Idle => None,
                _ => method_of(&self.start[..self.start_len as usize]),
            };
            self.counts.on_reject.report(Rejected {
                method,
                status,
                peer: self.peer,
            });
        }
        self.enter(Phase::Responding);
    }

    /// Follows the bytes a read returned through the request's phases. The
    /// head's end (`\r\n\r\n`) is found with a vectorised search, not a
    /// step per byte: a header costs the same here whatever its length.
    fn saw(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.phase {
                Phase::Idle | Phase::Responding => {
                    // A new request (pipelined, or after the last response)
                    // starts at its first byte that does not end a line.
                    let Some(i) = bytes.iter().position(|&b| b != b'\r' && b != b'\n') else {
                        return;
                    };
                    bytes = &bytes[i..];
                    self.enter(Phase::Head { matched: 0 });
                    self.start_len = 0;
                }
                Phase::Head { matched } => {
                    let kept = self.start_len as usize;
                    let take = (self.start.len() - kept).min(bytes.len());
                    self.start[kept..kept + take].copy_from_slice(&bytes[..take]);
                    self.start_len += take as u8;
                    match head_end(matched, bytes) {
                        Ok(end) => {
                            self.enter(Phase::Body);
                            bytes = &bytes[end..];
                        }
                        Err(matched) => {
                            self.phase = Phase::Head { matched };
                            return;
                        }
                    }
                }
                // Body bytes arrive: the body deadline restarts (a slow
                // upload that keeps coming is not cut; one that stalls is).
                Phase::Body => {
                    self.timer.as_mut().reset(Instant::now() + self.limits.body);
                    return;
                }
            }
        }
    }
}

/// Where in `bytes` a request head ends (just past its `\r\n\r\n`), given
/// that the bytes before them ended with the first `matched` bytes of it;
/// or, if it does not end here, how many of its bytes the read ends with.
fn head_end(mut matched: u8, bytes: &[u8]) -> Result<usize, u8> {
    const END: &[u8; 4] = b"\r\n\r\n";
    // A match begun in an earlier read, continued.
    let mut i = 0;
    while matched > 0 && i < bytes.len() {
        matched = if bytes[i] == END[matched as usize] {
            matched + 1
        } else if bytes[i] == b'\r' {
            1
        } else {
            0
        };
        i += 1;
        if matched == 4 {
            return Ok(i);
        }
    }
    if matched > 0 {
        return Err(matched);
    }
    let rest = &bytes[i..];
    if let Some(j) = memchr::memmem::find(rest, END) {
        return Ok(i + j + 4);
    }
    // No end here: what the read ends with that may begin one (the bytes
    // before `rest` end with none of it, so it lies within `rest`).
    Err(if rest.ends_with(b"\r\n\r") {
        3
    } else if rest.ends_with(b"\r\n") {
        2
    } else {
        u8::from(rest.ends_with(b"\r"))
    })
}

impl<Io: AsyncRead + Unpin> AsyncRead for Deadlines<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.phase != Phase::Responding && this.timer.as_mut().poll(cx).is_ready() {
            this.counts.timed_out.fetch_add(1, Ordering::Relaxed);
            let what = match this.phase {
                Phase::Idle => "idle",
                Phase::Head { .. } => "request head",
                _ => "request body",
            };
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} deadline passed"),
            )));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.saw(&buf.filled()[before..]);
        }
        r
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Deadlines<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // A response is being written (its head, or more of its body after
        // a flush): no read deadline runs until it is flushed.
        if this.phase != Phase::Responding {
            this.responding(data);
        }
        Pin::new(&mut this.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_flush(cx);
        // A flushed response: the connection is idle until the next request.
        if r.is_ready() && this.phase == Phase::Responding {
            this.enter(Phase::Idle);
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.phase != Phase::Responding {
            this.responding(bufs.first().map_or(&[][..], |b| &b[..]));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Deadlines<tokio::io::DuplexStream> {
        let (a, _b) = tokio::io::duplex(64);
        let limits = Limits {
            header: Duration::from_secs(1),
            body: Duration::from_secs(2),
            idle: Duration::from_secs(3),
            max_connections: 1,
        };
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        Deadlines::new(a, limits, slot, Arc::default())
    }

    /// The head's end found by `head_end`, read by read, is where a step
    /// per byte finds it, whatever the bytes and however they are split.
    #[test]
    fn head_end_agrees_with_a_step_per_byte() {
        use proptest::prelude::*;
        fn step(m: u8, b: u8) -> u8 {
            if b == b"\r\n\r\n"[m as usize] {
                m + 1
            } else if b == b'\r' {
                1
            } else {
                0
            }
        }
        let bytes =
            proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..40);
        let cuts = proptest::collection::vec(0usize..40, 0..4);
        proptest!(|(bytes in bytes, mut cuts in cuts)| {
            // The reference: the offset just past the first end, byte by byte.
            let mut m = 0;
            let want = bytes.iter().position(|&b| {
                m = step(m, b);
                m == 4
            }).map(|i| i + 1);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let (mut m, mut from, mut got) = (0u8, 0usize, None);
            for cut in cuts.into_iter().map(|c| c.min(bytes.len())) {
                if got.is_some() || cut < from {
                    continue;
                }
                match head_end(m, &bytes[from..cut]) {
                    Ok(end) => got = Some(from + end),
                    Err(still) => m = still,
                }
                from = cut;
            }
            prop_assert_eq!(got, want);
        });
    }

    #[tokio::test]
    async fn phases_follow_the_request_head_across_reads() {
        let mut c = conn();
        assert_eq!(c.phase, Phase::Idle);
        c.saw(b"GET / HTTP/1.1\r\nHost: x\r");
        assert_eq!(c.phase, Phase::Head { matched: 1 });
        c.saw(b"\n\r");
        assert_eq!(c.phase, Phase::Head { matched: 3 });
        c.saw(b"\nbody");
        assert_eq!(c.phase, Phase::Body);
        c.enter(Phase::Responding);
        c.enter(Phase::Idle);
        c.saw(b"\r\n");
        assert_eq!(c.phase, Phase::Idle, "blank lines between requests");
        c.saw(b"P");
        assert_eq!(c.phase, Phase::Head { matched: 0 });
    }

    #[test]
    fn hyper_rejections_are_told_from_routed_responses() {
        let own = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_rejection(own), Some(431));
        let routed = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nx-request-id: 2a4f\r\n\r\n";
        assert_eq!(hyper_rejection(routed), None);
        assert_eq!(hyper_rejection(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(method_of(b"POST /x"), Some(HttpMethod::Post));
        assert_eq!(method_of(b"AAAAAAAA"), None);
    }
}
