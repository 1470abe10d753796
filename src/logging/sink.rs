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

use super::request_line::{RequestLine, Style};
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

/// Which output a write went to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    File,
    Console,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::File => "file",
            Which::Console => "console",
        }
    }
}

/// What an output can do about a line that a failed write cut short.
///
/// A write that fails partway (`ENOSPC` on a full disk) leaves the start of
/// a line at the end of the output. Left there, it would be glued to the
/// first line written after recovery, and a JSON reader would lose both.
pub trait TakeBack {
    /// Removes `fragment`, which the last write left at the very end of the
    /// output, so that the output ends with a whole line again. Returns
    /// false if it cannot (the default: a pipe or a terminal cannot); the
    /// writer then completes the line at its next write instead.
    fn take_back(&mut self, fragment: &[u8]) -> bool {
        let _ = fragment;
        false
    }
}

impl TakeBack for std::io::Sink {}

/// One output of the writer and what it has been through.
struct WriterOutput<W: Write + TakeBack> {
    out: W,
    which: Which,
    /// The first failure has been reported (once per process).
    reported: bool,
    /// The rest of a line a failed write cut short and that could not be
    /// taken back: written first at the next write, which completes it.
    rest: Vec<u8>,
}

/// Writes all of `data` to `out` and flushes it; on failure, also says how
/// many bytes of `data` the output took.
fn write_counted(out: &mut impl Write, data: &[u8]) -> Result<(), (usize, std::io::Error)> {
    let mut done = 0;
    while done < data.len() {
        match out.write(&data[done..]) {
            Ok(0) => return Err((done, std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    out.flush().map_err(|e| (done, e))
}

/// Where the line that `written` bytes of `data` cut short starts and ends
/// (after its `\n`); `None` if those bytes end at a line boundary.
fn torn_line(data: &[u8], written: usize) -> Option<(usize, usize)> {
    let start = data[..written]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if start == written {
        return None;
    }
    let end = data[written..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |i| written + i + 1);
    Some((start, end))
}

/// Lines in `data`: its `\n`s, plus one for an unterminated end.
fn count_lines(data: &[u8]) -> u64 {
    let ends = data.iter().filter(|&&b| b == b'\n').count();
    let open = data.last().is_some_and(|&b| b != b'\n');
    (ends + usize::from(open)) as u64
}

/// The first write error of an output, as the line the other output gets.
fn failure_line(which: Which, err: &std::io::Error) -> (String, String) {
    let message = format!(
        "cannot write log lines to the {}: {err}; its lines are dropped while it fails, the {} goes on",
        which.name(),
        match which {
            Which::File => "console",
            Which::Console => "file",
        }
    );
    let key = super::layer::now_micros();
    let mut stamp = String::new();
    super::layer::push_timestamp_at(&mut stamp, key);
    let json = serde_json::json!({
        "timestamp": stamp,
        "level": "error",
        "logger": "telltale::logging",
        "message": message,
        "output": which.name(),
    });
    (
        format!("{json}\n"),
        format!("{stamp} ERROR telltale::logging: {message}\n"),
    )
}

/// The lines that say the writer thread stopped.
fn death_lines(why: &str) -> (String, String) {
    let message = format!(
        "the log writer stopped: {why}; log lines are dropped from now on and /ready fails"
    );
    let mut stamp = String::new();
    super::layer::push_timestamp_at(&mut stamp, super::layer::now_micros());
    let json = serde_json::json!({
        "timestamp": stamp,
        "level": "error",
        "logger": "telltale::logging",
        "message": message,
    });
    (
        format!("{json}\n"),
        format!("{stamp} ERROR telltale::logging: {message}\n"),
    )
}

impl<W: Write + TakeBack> WriterOutput<W> {
    fn new(out: W, which: Which) -> Self {
        WriterOutput {
            out,
            which,
            reported: false,
            rest: Vec::new(),
        }
    }

    /// Writes `data`, after the rest of a line an earlier failure cut short.
    /// On failure the output still ends with a whole line (see
    /// [`TakeBack`]); every line of `data` it does not hold is counted as
    /// lost, the batch as failed, and the error is returned the first time
    /// (for the other output to report).
    fn write(&mut self, data: &str, health: &Health) -> Option<std::io::Error> {
        if data.is_empty() && self.rest.is_empty() {
            return None;
        }
        let (e, lost) = match self.finish_torn_line() {
            Ok(()) => self.write_batch(data.as_bytes()).err()?,
            Err(e) => (e, count_lines(data.as_bytes())),
        };
        self.lost(health, lost);
        self.failed(health, e)
    }

    /// Writes the rest of a line cut short earlier, if any.
    fn finish_torn_line(&mut self) -> std::io::Result<()> {
        if self.rest.is_empty() {
            return Ok(());
        }
        match write_counted(&mut self.out, &self.rest) {
            Ok(()) => {
                self.rest.clear();
                Ok(())
            }
            Err((n, e)) => {
                self.rest.drain(..n);
                Err(e)
            }
        }
    }

    /// Writes `data`; on failure leaves the output at a line boundary (or
    /// keeps the torn line's rest for later) and returns the error with the
    /// number of `data`'s lines the output does not hold.
    fn write_batch(&mut self, data: &[u8]) -> Result<(), (std::io::Error, u64)> {
        let (written, e) = match write_counted(&mut self.out, data) {
            Ok(()) => return Ok(()),
            Err(failed) => failed,
        };
        let Some((start, end)) = torn_line(data, written) else {
            return Err((e, count_lines(&data[written..])));
        };
        let unwritten = count_lines(&data[end..]);
        if self.out.take_back(&data[start..written]) {
            // The torn line is gone from the output: it is lost too.
            Err((e, unwritten + 1))
        } else {
            self.rest = data[written..end].to_vec();
            Err((e, unwritten))
        }
    }

    /// Counts `lines` lost by this output.
    fn lost(&self, health: &Health, lines: u64) {
        match self.which {
            Which::File => &health.file_lines_lost,
            Which::Console => &health.console_lines_lost,
        }
        .fetch_add(lines, Ordering::Relaxed);
    }

    /// Counts a failed batch; returns its error the first time.
    fn failed(&mut self, health: &Health, e: std::io::Error) -> Option<std::io::Error> {
        match self.which {
            Which::File => &health.file_errors,
            Which::Console => &health.console_errors,
        }
        .fetch_add(1, Ordering::Relaxed);
        if std::mem::replace(&mut self.reported, true) {
            None
        } else {
            Some(e)
        }
    }
}

/// Both outputs: each failure is reported once in the other one.
struct Outputs<F: Write + TakeBack, C: Write + TakeBack> {
    file: WriterOutput<F>,
    console: WriterOutput<C>,
    /// The console gets the JSON lines too.
    json_console: bool,
}

impl<F: Write + TakeBack, C: Write + TakeBack> Outputs<F, C> {
    fn write(&mut self, file: &str, console: &str, health: &Health) {
        let console = if self.json_console { file } else { console };
        if let Some(e) = self.file.write(file, health) {
            let (json, text) = failure_line(Which::File, &e);
            let line = if self.json_console { json } else { text };
            let _ = self.console.write(&line, health);
        }
        if let Some(e) = self.console.write(console, health) {
            let (json, _) = failure_line(Which::Console, &e);
            let _ = self.file.write(&json, health);
        }
    }
}

/// How the writer thread renders queued request lines, and its scratch space.
struct Render {
    style: Style,
    spans: String,
}

impl Render {
    fn new(ansi: bool) -> Self {
        Render {
            style: Style::new(ansi),
            spans: String::new(),
        }
    }
}

/// Appends lines `first..end` of `q` to `file` and `console`: the bytes of
/// rendered lines as whole runs, records rendered in their place. `rec` is
/// the index in `q.records` of the first record not written yet.
#[allow(clippy::too_many_arguments)]
fn copy_lines(
    q: &Queue,
    first: usize,
    end: usize,
    rec: &mut usize,
    file: &mut String,
    console: &mut String,
    render: &mut Render,
) {
    let (mut fs, mut cs) = match first {
        0 => (0, 0),
        _ => (q.lines[first - 1].1, q.lines[first - 1].2),
    };
    while let Some((li, line)) = q.records.get(*rec).filter(|(li, _)| *li < end) {
        // A record takes no bytes: it sits where the lines before it end.
        let (key, fe, ce) = q.lines[*li];
        file.push_str(&q.file[fs..fe]);
        console.push_str(&q.console[cs..ce]);
        line.render(key, &render.style, file, console, &mut render.spans);
        (fs, cs) = (fe, ce);
        *rec += 1;
    }
    let (_, fe, ce) = q.lines[end - 1];
    file.push_str(&q.file[fs..fe]);
    console.push_str(&q.console[cs..ce]);
}

/// Merges several threads' queues into `file` and `console` in timestamp
/// order. Each queue is already in its thread's time order, so this is a
/// k-way merge: the earliest next line wins (the lower queue on a tie) and
/// its queue's following lines go with it, as one run, while they stay
/// ahead of every other queue. Each thread's lines keep their order even if
/// the clock steps back. `next` is scratch space.
fn merge(
    queues: &[Queue],
    next: &mut Vec<(usize, usize)>,
    file: &mut String,
    console: &mut String,
    render: &mut Render,
) {
    next.clear();
    next.resize(queues.len(), (0, 0));
    file.clear();
    console.clear();
    loop {
        // The earliest next line, and the runner-up it must stay ahead of.
        let mut best: Option<(u64, usize)> = None;
        let mut rival: Option<(u64, usize)> = None;
        for (qi, q) in queues.iter().enumerate() {
            let Some(&(key, _, _)) = q.lines.get(next[qi].0) else {
                continue;
            };
            if best.is_none_or(|b| (key, qi) < b) {
                rival = best;
                best = Some((key, qi));
            } else if rival.is_none_or(|r| (key, qi) < r) {
                rival = Some((key, qi));
            }
        }
        let Some((_, qi)) = best else { break };
        let q = &queues[qi];
        let (first, mut rec) = next[qi];
        let mut end = first + 1;
        while let Some(&(key, _, _)) = q.lines.get(end) {
            if rival.is_some_and(|r| (key, qi) > r) {
                break;
            }
            end += 1;
        }
        copy_lines(q, first, end, &mut rec, file, console, render);
        next[qi] = (end, rec);
    }
}

/// The writer thread: [`write_loop`] until the guard is dropped. A panic in
/// it (a bug, never an I/O error) is caught: the writer marks itself dead,
/// says so in both outputs, and wakes every thread waiting for room.
fn writer<F: Write + TakeBack, C: Write + TakeBack>(
    sh: &WriterShared,
    file: F,
    console: C,
    ansi: bool,
    json_console: bool,
) {
    let mut outs = Outputs {
        file: WriterOutput::new(file, Which::File),
        console: WriterOutput::new(console, Which::Console),
        json_console,
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_loop(sh, &mut outs, ansi)
    }));
    if let Err(panic) = run {
        sh.health.dead.store(true, Ordering::Release);
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let (json, text) = death_lines(&why);
        let text = if outs.json_console {
            json.clone()
        } else {
            text
        };
        // Either output may be what panicked: each write is guarded.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = outs.console.out.write_all(text.as_bytes());
        }));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = outs.file.out.write_all(json.as_bytes());
        }));
        let _closed = sh.closed();
        sh.room.notify_all();
    }
}

fn write_loop<F: Write + TakeBack, C: Write + TakeBack>(
    sh: &WriterShared,
    outs: &mut Outputs<F, C>,
    ansi: bool,
) {
    let mut render = Render::new(ansi);
    let mut taken: Vec<Queue> = Vec::new();
    let mut spares: Vec<Queue> = Vec::new();
    let mut next: Vec<(usize, usize)> = Vec::new();
    let (mut out_file, mut out_console) = (String::new(), String::new());
    loop {
        // Sleep until there is something to write (or the guard is dropped).
        // `idle` is set before looking, under the lock a pusher takes to
        // wake us, so a line pushed after the look always wakes us.
        let mut closed = sh.closed();
        loop {
            if *closed {
                break;
            }
            sh.idle.store(true, Ordering::SeqCst);
            if sh.pending() > 0 {
                sh.idle.store(false, Ordering::SeqCst);
                break;
            }
            closed = relock(sh.wake.wait(closed));
        }
        // Gather: give the other lines of a busy moment time to arrive.
        if !*closed && sh.slots().iter().all(|s| s.lock().bytes() < BATCH) {
            closed = relock(sh.wake.wait_timeout(closed, GATHER)).0;
        }
        let is_closed = *closed;
        drop(closed);

        // Take every queue, leaving an empty one in its place: room again.
        sh.stuck.store(false, Ordering::Release);
        {
            let mut slots = sh.slots();
            slots.retain(|slot| {
                let mut q = slot.lock();
                if !q.lines.is_empty() {
                    let spare = spares.pop().unwrap_or_default();
                    taken.push(std::mem::replace(&mut *q, spare));
                }
                // A thread that is gone and left nothing: forget its queue.
                !(q.lines.is_empty() && Arc::strong_count(slot) == 1)
            });
        }
        {
            let _closed = sh.closed();
            sh.room.notify_all();
        }

        match taken.as_slice() {
            [] => {}
            // One queue with nothing to render: its bytes are the output.
            [only] if only.records.is_empty() => {
                outs.write(&only.file, &only.console, &sh.health);
            }
            queues => {
                merge(
                    queues,
                    &mut next,
                    &mut out_file,
                    &mut out_console,
                    &mut render,
                );
                outs.write(&out_file, &out_console, &sh.health);
            }
        }
        for mut q in taken.drain(..) {
            q.clear();
            spares.push(q);
        }
        if is_closed && sh.pending() == 0 {
            return;
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
