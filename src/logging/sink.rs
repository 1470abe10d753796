//! A line sink that keeps I/O off the request threads.
//!
//! Each log event is a pair of lines, one for the file and one for the
//! console, pushed together with its timestamp. Every thread appends to its
//! own queue: a mutex only the writer thread ever contends, and a buffer no
//! other core writes to. One writer thread takes all the queues, merges
//! their lines by timestamp (so the output is in time order, as with one
//! shared queue) and writes each output with a single `write_all`. It sleeps
//! while there is nothing to write; once a line arrives it waits up to
//! [`GATHER`] for more (or until a queue holds [`BATCH`] bytes), so under load
//! there is one wake-up and one write per batch instead of one per line, and
//! an idle server costs nothing.
//!
//! Queues per thread rather than one shared buffer per output: with one,
//! two lock round-trips per request, the request threads fought over the
//! locks and over the buffers' cache lines (bench/NOTES.md, "Second round",
//! item 7).
//!
//! Not lossy while the writer lives: when a thread has [`MAX_QUEUED`] bytes
//! waiting, it blocks until the writer catches up, and dropping the
//! [`SinkGuard`] writes out everything.
//!
//! A failing output never stops the other one. A console that cannot be
//! written (`2>/dev/full`, a closed pipe, a reader that stopped reading) has
//! its lines dropped, batch by batch, while the file goes on; the first
//! failure of each output is reported once, in the other output, and every
//! failed batch is counted ([`Health`]), and so is every line it lost. A
//! write that fails partway (a full disk) never leaves half a line behind:
//! the line it cut short is taken back out of the file ([`TakeBack`]), or,
//! where that is not possible, completed at the next write, so after
//! recovery every line is whole. The writer thread catches its own
//! panics: if it ever stops, [`Health::writer_alive`] turns false (readiness
//! fails) and request threads drop their lines instead of waiting for it.
//!
//! Here: the queues, the [`Sink`] that fills them and the [`SinkGuard`]
//! that stops the writer. The writer thread and its merge are in
//! `sink/writer.rs`; its two outputs, with what a failed write leaves
//! behind, in `sink/output.rs`.

mod output;
mod writer;

pub use output::TakeBack;
use super::request_line::RequestLine;
use writer::writer;
use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a line waits in memory while the server is busy. Also what
/// bounds the writer's bursts: it renders and writes a whole gather's lines
/// at a stretch, and a request thread that shares its core waits meanwhile:
/// a longer gather shows in the p99 and gains no throughput (bench/NOTES.md,
/// "Seventh round", item 35).
pub const GATHER: Duration = Duration::from_millis(10);
/// Bytes queued by one thread that make the writer write at once.
pub const BATCH: usize = 256 * 1024;
/// Bytes queued by one thread at which it waits for the writer (back-pressure).
pub const MAX_QUEUED: usize = 8 * 1024 * 1024;
/// Longest a request thread waits for room in its queue. A writer that is
/// alive writes a full queue in milliseconds; one stuck longer than this
/// (an output that blocks forever) costs the line, never the request.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// One thread's lines, not yet written.
#[derive(Default)]
struct Queue {
    file: String,
    console: String,
    /// Per line: its timestamp key and where it ends in `file` and `console`.
    /// A record's line takes no bytes there: it is rendered when written.
    lines: Vec<(u64, usize, usize)>,
    /// Request lines not rendered yet, each with its index in `lines`.
    records: Vec<(usize, RequestLine)>,
}

/// What a queued record counts for against [`BATCH`] and [`MAX_QUEUED`].
const RECORD_BYTES: usize = std::mem::size_of::<(usize, RequestLine)>();

impl Queue {
    fn bytes(&self) -> usize {
        self.file.len() + self.console.len() + self.records.len() * RECORD_BYTES
    }
    fn clear(&mut self) {
        self.file.clear();
        self.console.clear();
        self.lines.clear();
        self.records.clear();
    }
}

#[derive(Default)]
struct Slot {
    queue: Mutex<Queue>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue invalid in a
        // way that matters (lines are appended before their record), so
        // poisoning is ignored.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the writer has been through, readable from any thread.
#[derive(Default, Debug)]
pub struct Health {
    /// The writer thread stopped (it panicked); nothing is written any more.
    dead: AtomicBool,
    /// Batches the console could not take (each one dropped).
    pub console_errors: AtomicU64,
    /// Batches the file could not take (each one dropped).
    pub file_errors: AtomicU64,
    /// Lines dropped because the writer was gone or stuck past [`MAX_WAIT`].
    pub dropped_lines: AtomicU64,
    /// Lines of failed batches the file does not hold (the one a failure
    /// cut short included: it is taken back out of the file).
    pub file_lines_lost: AtomicU64,
    /// The same for the console.
    pub console_lines_lost: AtomicU64,
}

impl Health {
    /// False once the writer thread has stopped for any reason but shutdown.
    pub fn writer_alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct WriterShared {
    /// Every thread's queue; the writer drains them all.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// `true` once the guard is dropped. The writer sleeps on it.
    closed: Mutex<bool>,
    /// Wakes the writer: first line after idle, a full batch, or close.
    wake: Condvar,
    /// Wakes threads blocked on a full queue.
    room: Condvar,
    /// The writer is asleep until the next line (not gathering a batch).
    idle: AtomicBool,
    /// A thread waited [`MAX_WAIT`] for room in vain: until the writer takes
    /// the queues again, full queues drop lines at once instead of waiting.
    stuck: AtomicBool,
    health: Health,
}

fn relock<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(|e| e.into_inner())
}

impl WriterShared {
    fn closed(&self) -> MutexGuard<'_, bool> {
        relock(self.closed.lock())
    }
    fn slots(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        relock(self.slots.lock())
    }
    fn pending(&self) -> usize {
        self.slots().iter().map(|s| s.lock().bytes()).sum()
    }
    fn wake_writer(&self) {
        let _closed = self.closed();
        self.idle.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// The writing end; cheap to clone.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<WriterShared>,
}

/// Owns the writer thread; dropping it writes every queued line and joins.
pub struct SinkGuard {
    shared: Arc<WriterShared>,
    thread: Option<JoinHandle<()>>,
}

thread_local! {
    /// This thread's queue in each sink it has written to (usually one).
    static SLOTS: RefCell<Vec<(Weak<WriterShared>, Arc<Slot>)>> = const { RefCell::new(Vec::new()) };
}

impl Sink {
    /// Starts a writer thread named `name` in front of `file` and `console`
    /// (`ansi`: request lines color their console level).
    #[cfg(test)]
    pub fn spawn<F, C>(file: F, console: C, name: &str, ansi: bool) -> (Sink, SinkGuard)
    where
        F: Write + TakeBack + Send + 'static,
        C: Write + TakeBack + Send + 'static,
    {
        Sink::spawn_with(file, console, name, ansi, false)
    }

    /// [`Sink::spawn`]; with `json_console`, the console gets the file's
    /// JSON lines instead of the human ones (for a container, whose stdout
    /// and stderr are what a log collector reads).
    pub fn spawn_with<F, C>(
        file: F,
        console: C,
        name: &str,
        ansi: bool,
        json_console: bool,
    ) -> (Sink, SinkGuard)
    where
        F: Write + TakeBack + Send + 'static,
        C: Write + TakeBack + Send + 'static,
    {
        let shared = Arc::new(WriterShared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || writer(&shared, file, console, ansi, json_console))
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

    /// The writer's error counts and whether it still runs.
    pub fn health(&self) -> &Health {
        &self.shared.health
    }

    /// A new queue, drained by the writer like every other.
    fn register(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        self.shared.slots().push(slot.clone());
        slot
    }

    /// Runs `f` on this thread's queue, registered on first use.
    fn with_slot(&self, f: impl FnOnce(&Slot)) {
        let me = Arc::as_ptr(&self.shared);
        let mut f = Some(f);
        let _ = SLOTS.try_with(|slots| {
            let Ok(mut slots) = slots.try_borrow_mut() else {
                return;
            };
            let at = match slots.iter().position(|(s, _)| std::ptr::eq(s.as_ptr(), me)) {
                Some(at) => at,
                None => {
                    slots.retain(|(s, _)| s.strong_count() > 0);
                    slots.push((Arc::downgrade(&self.shared), self.register()));
                    slots.len() - 1
                }
            };
            if let Some(f) = f.take() {
                f(&slots[at].1);
            }
        });
        // Not run: thread-local storage busy or already destroyed (a line
        // logged while the thread exits). A queue just for this push.
        if let Some(f) = f.take() {
            f(&self.register());
        }
    }

    /// Queues one event: its file line and console line (each with its
    /// `\n`) and its timestamp in microseconds, the order they are written in.
    pub fn push(&self, key: u64, file: &str, console: &str) {
        self.enqueue(|q| {
            q.file.push_str(file);
            q.console.push_str(console);
            let record = (key, q.file.len(), q.console.len());
            q.lines.push(record);
        });
    }

    /// Queues a request line, stamped `key` (microseconds since the epoch);
    /// the writer renders it (`RequestLine::render`).
    pub fn push_record(&self, key: u64, line: RequestLine) {
        self.enqueue(|q| {
            let at = q.lines.len();
            let record = (key, q.file.len(), q.console.len());
            q.lines.push(record);
            q.records.push((at, line));
        });
    }

    /// Runs `add` on this thread's queue, waiting first if it is full, and
    /// wakes the writer if it is idle or the queue now holds a batch.
    fn enqueue(&self, add: impl FnOnce(&mut Queue)) {
        let health = &self.shared.health;
        self.with_slot(|slot| {
            let mut q = slot.lock();
            if q.bytes() >= MAX_QUEUED {
                drop(q);
                self.wait_for_room(slot);
                q = slot.lock();
            }
            // Nobody will write it: a dead writer, or one stuck past MAX_WAIT.
            if !health.writer_alive() || q.bytes() >= MAX_QUEUED {
                health.dropped_lines.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let before = q.bytes();
            add(&mut q);
            let full = before < BATCH && q.bytes() >= BATCH;
            drop(q);
            // Only an idle writer or a full batch is worth a wake-up: a
            // writer that is gathering comes back on its own.
            let idle = &self.shared.idle;
            if full || (idle.load(Ordering::SeqCst) && idle.swap(false, Ordering::SeqCst)) {
                self.shared.wake_writer();
            }
        });
    }

    /// Waits until the writer has taken this thread's queue, at most
    /// [`MAX_WAIT`], and not at all once the writer is gone.
    fn wait_for_room(&self, slot: &Slot) {
        let sh = &self.shared;
        // The writer already failed to make room within MAX_WAIT: do not
        // make every request wait that long again.
        if sh.stuck.load(Ordering::Acquire) {
            return;
        }
        let deadline = Instant::now() + MAX_WAIT;
        let mut closed = sh.closed();
        sh.idle.store(false, Ordering::SeqCst);
        sh.wake.notify_one();
        while !*closed && sh.health.writer_alive() && slot.lock().bytes() >= MAX_QUEUED {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                sh.stuck.store(true, Ordering::Release);
                break;
            }
            closed = relock(sh.room.wait_timeout(closed, left)).0;
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        *self.shared.closed() = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
