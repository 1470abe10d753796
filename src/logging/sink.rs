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
//! `bench/run` measured the previous design (one shared buffer per output,
//! two lock round-trips per request) at about half of logging's cost: the
//! two request threads fought over the locks and over the buffers' cache
//! lines.
//!
//! Not lossy: when a thread has [`MAX_QUEUED`] bytes waiting, it blocks until
//! the writer catches up, and dropping the [`SinkGuard`] writes out everything.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a line waits in memory while the server is busy.
pub const GATHER: Duration = Duration::from_millis(50);
/// Bytes queued by one thread that make the writer write at once.
pub const BATCH: usize = 256 * 1024;
/// Bytes queued by one thread at which it waits for the writer (back-pressure).
pub const MAX_QUEUED: usize = 8 * 1024 * 1024;

/// One thread's lines, not yet written.
#[derive(Default)]
struct Queue {
    file: Vec<u8>,
    console: Vec<u8>,
    /// Per line: its timestamp key and where it ends in `file` and `console`.
    lines: Vec<(u64, usize, usize)>,
}

impl Queue {
    fn bytes(&self) -> usize {
        self.file.len() + self.console.len()
    }
    fn clear(&mut self) {
        self.file.clear();
        self.console.clear();
        self.lines.clear();
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

#[derive(Default)]
struct Shared {
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
}

fn relock<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(|e| e.into_inner())
}

impl Shared {
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
    shared: Arc<Shared>,
}

/// Owns the writer thread; dropping it writes every queued line and joins.
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

thread_local! {
    /// This thread's queue in each sink it has written to (usually one).
    static SLOTS: RefCell<Vec<(Weak<Shared>, Arc<Slot>)>> = const { RefCell::new(Vec::new()) };
}

impl Sink {
    /// Starts a writer thread named `name` in front of `file` and `console`.
    pub fn spawn<F, C>(file: F, console: C, name: &str) -> (Sink, SinkGuard)
    where
        F: Write + Send + 'static,
        C: Write + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || writer(&shared, file, console))
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
    pub fn push(&self, key: u64, file: &[u8], console: &[u8]) {
        self.with_slot(|slot| {
            let mut q = slot.lock();
            if q.bytes() >= MAX_QUEUED {
                drop(q);
                self.wait_for_room(slot);
                q = slot.lock();
            }
            let before = q.bytes();
            q.file.extend_from_slice(file);
            q.console.extend_from_slice(console);
            let record = (key, q.file.len(), q.console.len());
            q.lines.push(record);
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

    fn wait_for_room(&self, slot: &Slot) {
        let sh = &self.shared;
        let mut closed = sh.closed();
        sh.idle.store(false, Ordering::SeqCst);
        sh.wake.notify_one();
        while !*closed && slot.lock().bytes() >= MAX_QUEUED {
            closed = relock(sh.room.wait(closed));
        }
    }
}

/// Writes `data` to `out`; reports the first failure of a run only.
fn write_out(out: &mut impl Write, data: &[u8], failed: &mut bool) {
    if data.is_empty() {
        return;
    }
    match out.write_all(data).and_then(|()| out.flush()) {
        Ok(()) => *failed = false,
        Err(e) if !*failed => {
            *failed = true;
            eprintln!("telltale: cannot write log lines: {e}");
        }
        Err(_) => {}
    }
}

/// Merges several threads' queues into `file` and `console` in timestamp
/// order. Each queue is already in its thread's time order, so this is a
/// k-way merge: the earliest next line wins (the lower queue on a tie) and
/// its queue's following lines go with it, copied as one run, while they
/// stay ahead of every other queue. Each thread's lines keep their order
/// even if the clock steps back. `next` is scratch space.
fn merge(queues: &[Queue], next: &mut Vec<usize>, file: &mut Vec<u8>, console: &mut Vec<u8>) {
    next.clear();
    next.resize(queues.len(), 0);
    file.clear();
    console.clear();
    // Where line `li` of `q` starts in its `file` and `console` buffers.
    let start = |q: &Queue, li: usize| match li {
        0 => (0, 0),
        _ => (q.lines[li - 1].1, q.lines[li - 1].2),
    };
    loop {
        // The earliest next line, and the runner-up it must stay ahead of.
        let mut best: Option<(u64, usize)> = None;
        let mut rival: Option<(u64, usize)> = None;
        for (qi, q) in queues.iter().enumerate() {
            let Some(&(key, _, _)) = q.lines.get(next[qi]) else {
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
        let first = next[qi];
        let mut end = first + 1;
        while let Some(&(key, _, _)) = q.lines.get(end) {
            if rival.is_some_and(|r| (key, qi) > r) {
                break;
            }
            end += 1;
        }
        let (fs, cs) = start(q, first);
        let (_, fe, ce) = q.lines[end - 1];
        file.extend_from_slice(&q.file[fs..fe]);
        console.extend_from_slice(&q.console[cs..ce]);
        next[qi] = end;
    }
}

fn writer<F: Write, C: Write>(sh: &Shared, mut file: F, mut console: C) {
    let mut taken: Vec<Queue> = Vec::new();
    let mut spares: Vec<Queue> = Vec::new();
    let mut next: Vec<usize> = Vec::new();
    let (mut out_file, mut out_console) = (Vec::new(), Vec::new());
    let (mut file_failed, mut console_failed) = (false, false);
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

        // Take every queue, leaving an empty one in its place.
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

        if let [only] = taken.as_slice() {
            write_out(&mut file, &only.file, &mut file_failed);
            write_out(&mut console, &only.console, &mut console_failed);
        } else if !taken.is_empty() {
            merge(&taken, &mut next, &mut out_file, &mut out_console);
            write_out(&mut file, &out_file, &mut file_failed);
            write_out(&mut console, &out_console, &mut console_failed);
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
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read after the sink is gone.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);
    impl Write for Out {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Out {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_per_thread() {
        let (file, console) = (Out::default(), Out::default());
        let (sink, guard) = Sink::spawn(file.clone(), console.clone(), "test-sink");
        let clock = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (sink, clock) = (sink.clone(), clock.clone());
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        // Like a timestamp: increasing per thread, and
                        // interleaved across threads.
                        let key = clock.fetch_add(1, Ordering::Relaxed);
                        let line = format!("{key} {t} {i}\n");
                        sink.push(key, line.as_bytes(), format!("c {line}").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let (file, console) = (file.text(), console.text());
        let mut next = [0usize; 4];
        let mut lines = 0;
        for (f, c) in file.lines().zip(console.lines()) {
            assert_eq!(c, format!("c {f}"), "file and console lines out of step");
            let mut parts = f.split(' ').skip(1).map(|p| p.parse::<usize>().unwrap());
            let (t, i) = (parts.next().unwrap(), parts.next().unwrap());
            assert_eq!(i, next[t], "thread {t} lines out of order or lost");
            next[t] += 1;
            lines += 1;
        }
        assert_eq!(lines, 80_000);
        assert_eq!(console.lines().count(), 80_000);
    }

    fn queue(lines: &[(u64, &str)]) -> Queue {
        let mut q = Queue::default();
        for (key, text) in lines {
            q.file.extend_from_slice(format!("{text}\n").as_bytes());
            q.console.extend_from_slice(format!("c{text}\n").as_bytes());
            q.lines.push((*key, q.file.len(), q.console.len()));
        }
        q
    }

    #[test]
    fn merged_queues_are_in_timestamp_order_and_stable() {
        let queues = [
            queue(&[(1, "a1"), (5, "a5"), (5, "a5bis"), (9, "a9")]),
            queue(&[]),
            queue(&[(2, "b2"), (5, "b5"), (7, "b7")]),
            queue(&[(0, "c0"), (10, "c10")]),
        ];
        let (mut next, mut file, mut console) = (Vec::new(), Vec::new(), Vec::new());
        merge(&queues, &mut next, &mut file, &mut console);
        let want = ["c0", "a1", "b2", "a5", "a5bis", "b5", "b7", "a9", "c10"];
        assert_eq!(
            String::from_utf8(file).unwrap(),
            want.map(|w| format!("{w}\n")).concat()
        );
        assert_eq!(
            String::from_utf8(console).unwrap(),
            want.map(|w| format!("c{w}\n")).concat()
        );
    }

    /// The k-way merge gives what a stable sort of every line by timestamp
    /// gives, on queues with many ties and runs of every length.
    #[test]
    fn merge_equals_a_stable_sort_by_timestamp() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut checked = 0;
        for _ in 0..300 {
            let k = 1 + rand(5) as usize;
            let owned: Vec<Vec<(u64, String)>> = (0..k)
                .map(|qi| {
                    let mut key = rand(4);
                    (0..rand(12))
                        .map(|li| {
                            key += rand(3); // 0: a tie with the line before
                            (key, format!("q{qi}l{li}"))
                        })
                        .collect()
                })
                .collect();
            let queues: Vec<Queue> = owned
                .iter()
                .map(|q| queue(&q.iter().map(|(k, t)| (*k, t.as_str())).collect::<Vec<_>>()))
                .collect();
            let mut all: Vec<(u64, &str)> = owned
                .iter()
                .flat_map(|q| q.iter().map(|(k, t)| (*k, t.as_str())))
                .collect();
            all.sort_by_key(|&(key, _)| key); // stable: queue order on ties
            let (mut next, mut file, mut console) = (Vec::new(), Vec::new(), Vec::new());
            merge(&queues, &mut next, &mut file, &mut console);
            let want: String = all.iter().map(|(_, t)| format!("{t}\n")).collect();
            assert_eq!(String::from_utf8(file).unwrap(), want);
            let want: String = all.iter().map(|(_, t)| format!("c{t}\n")).collect();
            assert_eq!(String::from_utf8(console).unwrap(), want);
            checked += all.len();
        }
        assert!(checked > 1000, "{checked}");
    }

    /// A clock that steps back does not reorder one thread's lines.
    #[test]
    fn merge_keeps_each_threads_order_when_the_clock_steps_back() {
        let queues = [
            queue(&[(10, "a10"), (3, "a3"), (4, "a4")]),
            queue(&[(5, "b5")]),
        ];
        let (mut next, mut file, mut console) = (Vec::new(), Vec::new(), Vec::new());
        merge(&queues, &mut next, &mut file, &mut console);
        assert_eq!(String::from_utf8(file).unwrap(), "b5\na10\na3\na4\n");
    }

    #[test]
    fn a_line_reaches_the_output_without_a_shutdown() {
        let (file, console) = (Out::default(), Out::default());
        let (sink, _guard) = Sink::spawn(file.clone(), console.clone(), "test-sink");
        for round in 0..3 {
            // The writer goes idle between rounds; each first line wakes it.
            let want = "hello\n".repeat(round + 1);
            sink.push(round as u64, b"hello\n", b"");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while file.text() != want {
                assert!(std::time::Instant::now() < deadline, "line never written");
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(GATHER * 2);
        }
    }

    #[test]
    fn a_full_queue_waits_for_the_writer_instead_of_dropping_lines() {
        /// An output slower than the producer.
        struct Slow(Out);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                self.0.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let file = Out::default();
        let (sink, guard) = Sink::spawn(Slow(file.clone()), std::io::sink(), "test-sink");
        let line = vec![b'x'; 64 * 1024 - 1];
        let line = [line.as_slice(), b"\n"].concat();
        let n = 3 * MAX_QUEUED / line.len();
        for i in 0..n {
            sink.push(i as u64, &line, b"");
        }
        drop(guard);
        assert_eq!(file.0.lock().unwrap().len(), n * line.len());
    }
}
