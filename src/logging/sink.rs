//! A line sink that keeps I/O off the request threads.
//!
//! Callers append whole lines to a shared buffer (a short mutex hold and a
//! copy). One writer thread takes the buffer and writes it with a single
//! `write_all`: it sleeps while the buffer is empty, and once a line arrives
//! it waits up to [`GATHER`] for more (or until [`BATCH`] bytes are queued),
//! so under load there is one wake-up and one write per batch instead of one
//! per line, and an idle server costs nothing.
//!
//! Not lossy: when [`MAX_QUEUED`] bytes are waiting, callers block until the
//! writer catches up, and dropping the [`SinkGuard`] writes out everything.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a line waits in memory while the server is busy.
pub const GATHER: Duration = Duration::from_millis(50);
/// Queued bytes that make the writer write at once.
pub const BATCH: usize = 256 * 1024;
/// Queued bytes at which callers wait for the writer (back-pressure).
pub const MAX_QUEUED: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    closed: bool,
    /// The writer sleeps until a first line arrives (not gathering a batch).
    idle: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: first line after idle, a full batch, or close.
    wake: Condvar,
    /// Wakes callers blocked on a full buffer.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the buffer invalid
        // (it only ever grows by whole lines), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writing end; cheap to clone.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
}

/// Owns the writer thread; dropping it writes every queued line and joins.
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// Starts a writer thread named `name` in front of `out`.
    pub fn spawn<W: Write + Send + 'static>(out: W, name: &str) -> (Sink, SinkGuard) {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || writer(&shared, out))
                .expect("spawn the log writer thread")
        };
        (
            Sink {
                shared: shared.clone(),
            },
            SinkGuard {
                shared,
                thread: Some(thread),
            },
        )
    }

    /// Queues one whole line (the caller includes the `\n`).
    pub fn push(&self, line: &[u8]) {
        let mut st = self.shared.lock();
        while st.buf.len() >= MAX_QUEUED && !st.closed {
            st = self.shared.room.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let before = st.buf.len();
        st.buf.extend_from_slice(line);
        // Only an idle writer or a full batch is worth a wake-up: a writer
        // that is gathering will come back on its own.
        let wake = std::mem::take(&mut st.idle) || (before < BATCH && st.buf.len() >= BATCH);
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
    }
}

/// So that `tracing_subscriber::fmt` can write to a sink: it writes each
/// formatted event with one `write_all`, which keeps lines whole.
impl Write for &Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = &'a Sink;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

fn writer<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    let mut failed = false;
    loop {
        let mut st = shared.lock();
        while st.buf.is_empty() && !st.closed {
            st.idle = true;
            st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.idle = false;
        if !st.closed && st.buf.len() < BATCH {
            st = shared
                .wake
                .wait_timeout(st, GATHER)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let data = std::mem::replace(&mut st.buf, std::mem::take(&mut spare));
        let closed = st.closed;
        drop(st);
        shared.room.notify_all();
        if !data.is_empty() {
            match out.write_all(&data).and_then(|()| out.flush()) {
                Ok(()) => failed = false,
                Err(e) if !failed => {
                    failed = true;
                    eprintln!("telltale: cannot write log lines: {e}");
                }
                Err(_) => {}
            }
        }
        spare = data;
        spare.clear();
        if closed && shared.lock().buf.is_empty() {
            return;
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read after the sink is gone.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_per_thread() {
        let out = Shared::default();
        let (sink, guard) = Sink::spawn(out.clone(), "test-sink");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        sink.push(format!("{t} {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        let mut lines = 0;
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t} lines out of order or lost");
            next[t] += 1;
            lines += 1;
        }
        assert_eq!(lines, 80_000);
    }

    #[test]
    fn a_line_reaches_the_output_without_a_shutdown() {
        let out = Shared::default();
        let (sink, _guard) = Sink::spawn(out.clone(), "test-sink");
        sink.push(b"hello\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().unwrap().as_slice() != b"hello\n" {
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
