//! Unit tests of the log sink, and helpers other logging tests share.

use super::writer::{merge, Render};
use crate::logging::request_line::Style;
use super::*;

/// A `Write` whose bytes the test can read after the sink is gone.
#[derive(Clone, Default)]
pub(in crate::logging) struct Out(Arc<Mutex<Vec<u8>>>);
impl Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl TakeBack for Out {}
impl Out {
    pub(in crate::logging) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn every_line_is_written_whole_and_in_order_per_thread() {
    let (file, console) = (Out::default(), Out::default());
    let (sink, guard) = Sink::spawn(file.clone(), console.clone(), "test-sink", false);
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
                    sink.push(key, &line, &format!("c {line}"));
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

/// A request line for test line `text` (those that start with `R`).
fn record(text: &str) -> RequestLine {
    use crate::logging::request::{RequestFields, RequestId};
    let id = RequestId::from_header(&poem::http::HeaderValue::from_static("id")).unwrap();
    RequestLine {
        fields: RequestFields::new(&id, poem::http::Method::GET, &format!("/{text}")),
        status: 200,
        duration_us: 1,
        route: "/r",
        caller: None,
        trace: None,
    }
}

/// The file and console lines the writer gives for test line `text`.
fn written(key: u64, text: &str) -> (String, String) {
    let (mut file, mut console) = (String::new(), String::new());
    if text.starts_with('R') {
        let style = Style::new(false);
        record(text).render(key, &style, &mut file, &mut console, &mut String::new());
    } else {
        (file, console) = (format!("{text}\n"), format!("c{text}\n"));
    }
    (file, console)
}

/// A queue of lines; those whose text starts with `R` are request
/// records, the others rendered bytes.
fn queue(lines: &[(u64, &str)]) -> Queue {
    let mut q = Queue::default();
    for (key, text) in lines {
        if text.starts_with('R') {
            q.records.push((q.lines.len(), record(text)));
        } else {
            q.file.push_str(&format!("{text}\n"));
            q.console.push_str(&format!("c{text}\n"));
        }
        q.lines.push((*key, q.file.len(), q.console.len()));
    }
    q
}

/// What the writer writes for `queues`: the file's and the console's.
fn merged(queues: &[Queue]) -> (String, String) {
    let (mut file, mut console) = (String::new(), String::new());
    let render = &mut Render::new(false);
    merge(queues, &mut Vec::new(), &mut file, &mut console, render);
    (file, console)
}

#[test]
fn merged_queues_are_in_timestamp_order_and_stable() {
    let queues = [
        queue(&[(1, "a1"), (5, "a5"), (5, "a5bis"), (9, "a9")]),
        queue(&[]),
        queue(&[(2, "b2"), (5, "b5"), (7, "b7")]),
        queue(&[(0, "c0"), (10, "c10")]),
    ];
    let (file, console) = merged(&queues);
    let want = ["c0", "a1", "b2", "a5", "a5bis", "b5", "b7", "a9", "c10"];
    assert_eq!(file, want.map(|w| format!("{w}\n")).concat());
    assert_eq!(console, want.map(|w| format!("c{w}\n")).concat());
}

/// The k-way merge gives what a stable sort of every line by timestamp
/// gives, on queues with many ties and runs of every length, with request
/// records (rendered by the merge) among the rendered lines.
#[test]
fn merge_equals_a_stable_sort_by_timestamp() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (mut checked, mut records) = (0, 0);
    for _ in 0..300 {
        let k = 1 + rand(5) as usize;
        let owned: Vec<Vec<(u64, String)>> = (0..k)
            .map(|qi| {
                let mut key = rand(4);
                (0..rand(12))
                    .map(|li| {
                        key += rand(3); // 0: a tie with the line before
                        let kind = if rand(3) == 0 { "R" } else { "" };
                        (key, format!("{kind}q{qi}l{li}"))
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
        let (file, console) = merged(&queues);
        let want: Vec<(String, String)> = all.iter().map(|&(k, t)| written(k, t)).collect();
        assert_eq!(file, want.iter().map(|w| w.0.as_str()).collect::<String>());
        assert_eq!(
            console,
            want.iter().map(|w| w.1.as_str()).collect::<String>()
        );
        checked += all.len();
        records += all.iter().filter(|(_, t)| t.starts_with('R')).count();
    }
    assert!(checked > 1000 && records > 300, "{checked} {records}");
}

/// A clock that steps back does not reorder one thread's lines.
#[test]
fn merge_keeps_each_threads_order_when_the_clock_steps_back() {
    let queues = [
        queue(&[(10, "a10"), (3, "a3"), (4, "a4")]),
        queue(&[(5, "b5")]),
    ];
    let (file, _) = merged(&queues);
    assert_eq!(file, "b5\na10\na3\na4\n");
}

#[test]
fn a_line_reaches_the_output_without_a_shutdown() {
    let (file, console) = (Out::default(), Out::default());
    let (sink, _guard) = Sink::spawn(file.clone(), console.clone(), "test-sink", false);
    for round in 0..3 {
        // The writer goes idle between rounds; each first line wakes it.
        let want = "hello\n".repeat(round + 1);
        sink.push(round as u64, "hello\n", "");
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
    impl TakeBack for Slow {}
    let file = Out::default();
    let (sink, guard) = Sink::spawn(Slow(file.clone()), std::io::sink(), "test-sink", false);
    let line = format!("{}\n", "x".repeat(64 * 1024 - 1));
    let n = 3 * MAX_QUEUED / line.len();
    for i in 0..n {
        sink.push(i as u64, &line, "");
    }
    drop(guard);
    assert_eq!(file.0.lock().unwrap().len(), n * line.len());
}

#[test]
fn a_writer_that_panics_is_reported_and_never_blocks_request_threads() {
    /// An output whose code has a bug.
    struct Panics;
    impl Write for Panics {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            panic!("bug in an output");
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl TakeBack for Panics {}
    let console = Out::default();
    let (sink, guard) = Sink::spawn(Panics, console.clone(), "test-sink", false);
    sink.push(1, "first\n", "first\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.health().writer_alive() {
        assert!(
            Instant::now() < deadline,
            "the writer's death is never seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Far past MAX_QUEUED: every push returns at once, and is counted.
    let line = format!("{}\n", "x".repeat(64 * 1024 - 1));
    let started = Instant::now();
    for i in 0..(2 * MAX_QUEUED / line.len()) {
        sink.push(i as u64, &line, "");
    }
    assert!(
        started.elapsed() < MAX_WAIT,
        "pushes waited for a dead writer"
    );
    assert!(sink.health().dropped_lines.load(Ordering::Relaxed) > 0);
    drop(guard);
    assert!(
        console
            .text()
            .contains("the log writer stopped: bug in an output"),
        "{}",
        console.text()
    );
}

#[test]
fn a_json_console_gets_the_file_lines_and_a_file_failure_as_json() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl TakeBack for Broken {}
    let (file, console) = (Out::default(), Out::default());
    let (sink, guard) = Sink::spawn_with(file.clone(), console.clone(), "test-sink", false, true);
    sink.push(1, "{\"n\":1}\n", "human 1\n");
    sink.push(2, "{\"n\":2}\n", "human 2\n");
    drop(guard);
    assert_eq!(console.text(), "{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(file.text(), console.text());
    // A failing file is reported on the console as a JSON line too.
    let console = Out::default();
    let (sink, guard) = Sink::spawn_with(Broken, console.clone(), "test-sink", false, true);
    sink.push(1, "{\"n\":1}\n", "human 1\n");
    drop(guard);
    let text = console.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("cannot write log lines to the file"))));
    assert!(!text.contains("human"), "{text}");
}

#[test]
fn a_failing_console_is_reported_once_in_the_file_and_the_file_goes_on() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC, as /dev/full
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl TakeBack for Broken {}
    let file = Out::default();
    let (sink, guard) = Sink::spawn(file.clone(), Broken, "test-sink", false);
    for round in 0..3u64 {
        sink.push(round, "line\n", "line\n");
        std::thread::sleep(GATHER * 3);
    }
    let health = sink.health();
    assert!(health.writer_alive());
    assert_eq!(health.console_errors.load(Ordering::Relaxed), 3);
    drop(guard);
    let text = file.text();
    assert_eq!(text.matches("line\n").count(), 3, "{text}");
    assert_eq!(
        text.matches("cannot write log lines to the console")
            .count(),
        1
    );
}

#[test]
fn a_stuck_writer_costs_one_wait_then_lines_drop_at_once() {
    /// An output whose reader never reads again.
    struct Stuck;
    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl TakeBack for Stuck {}
    let (sink, guard) = Sink::spawn(Stuck, std::io::sink(), "test-sink", false);
    // Dropping the guard would join a writer that never returns.
    std::mem::forget(guard);
    let line = format!("{}\n", "x".repeat(64 * 1024 - 1));
    // The writer takes at most one queue (at most MAX_QUEUED bytes)
    // before it sticks, so 3 × MAX_QUEUED of lines fill the queue again.
    let started = Instant::now();
    for i in 0..(3 * MAX_QUEUED / line.len()) {
        sink.push(i as u64, &line, "");
    }
    let first = started.elapsed();
    assert!(first >= MAX_WAIT, "gave up before MAX_WAIT: {first:?}");
    assert!(first < 2 * MAX_WAIT, "waited more than once: {first:?}");
    let again = Instant::now();
    for i in 0..200 {
        sink.push(i, &line, "");
    }
    assert!(
        again.elapsed() < Duration::from_secs(1),
        "each line waited again"
    );
    assert!(sink.health().dropped_lines.load(Ordering::Relaxed) >= 200);
}

/// A disk that fills: a write takes what still fits and fails with
/// `ENOSPC` once nothing does, as `write(2)` on a full file system.
struct Disk {
    bytes: Vec<u8>,
    room: usize,
    /// The file can be cut back (a regular file can, a pipe cannot).
    cuts: bool,
}
/// The test's handle on a [`Disk`] the writer owns.
#[derive(Clone)]
struct SharedDisk(Arc<Mutex<Disk>>);
impl Write for SharedDisk {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut d = self.0.lock().unwrap();
        if d.room == 0 {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        let n = b.len().min(d.room);
        d.bytes.extend_from_slice(&b[..n]);
        d.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl TakeBack for SharedDisk {
    fn take_back(&mut self, fragment: &[u8]) -> bool {
        let mut d = self.0.lock().unwrap();
        if !d.cuts || !d.bytes.ends_with(fragment) {
            return false;
        }
        let keep = d.bytes.len() - fragment.len();
        d.bytes.truncate(keep);
        d.room += fragment.len();
        true
    }
}

/// Writes 10 batches of 10 JSON lines through a sink onto a disk that
/// fills in the middle of a line of the third batch and gets room again
/// before the eighth. Returns the file's lines and the sink's health.
fn fill_and_recover(cuts: bool) -> (Vec<serde_json::Value>, Arc<WriterShared>) {
    let line = |n: usize| format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "x".repeat(80));
    let disk = SharedDisk(Arc::new(Mutex::new(Disk {
        bytes: Vec::new(),
        // Two batches and a half, cut inside a line.
        room: 25 * line(0).len() + 37,
        cuts,
    })));
    let (sink, guard) = Sink::spawn(disk.clone(), std::io::sink(), "test-sink", false);
    for batch in 0..10 {
        if batch == 7 {
            disk.0.lock().unwrap().room += 1 << 20; // a file was deleted
        }
        for i in 0..10 {
            let n = batch * 10 + i;
            sink.push(n as u64, &line(n), "");
        }
        std::thread::sleep(GATHER * 5);
    }
    let shared = sink.shared.clone();
    drop(guard);
    let bytes = disk.0.lock().unwrap().bytes.clone();
    let text = String::from_utf8(bytes).expect("UTF-8");
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect();
    assert!(text.ends_with('\n'), "the file ends mid-line");
    (lines, shared)
}

/// The lines of a file written by [`fill_and_recover`], by number.
fn numbers(lines: &[serde_json::Value]) -> Vec<u64> {
    lines.iter().map(|l| l["n"].as_u64().unwrap()).collect()
}

/// A line that a full disk cuts short is taken back out of the file:
/// after recovery every line is whole JSON, and each line the file does
/// not hold is counted as lost.
#[test]
fn a_full_disk_leaves_only_whole_lines_and_counts_every_lost_one() {
    let (lines, shared) = fill_and_recover(true);
    let h = &shared.health;
    let want: Vec<u64> = (0..25).chain(70..100).collect();
    assert_eq!(numbers(&lines), want, "whole lines before and after");
    assert_eq!(h.file_lines_lost.load(Ordering::Relaxed), 100 - 55);
    assert!(h.file_errors.load(Ordering::Relaxed) >= 5);
}

/// An output that cannot be cut back gets the rest of the torn line
/// first at recovery: the line is whole again, and not lost.
#[test]
fn a_torn_line_that_cannot_be_taken_back_is_completed_at_recovery() {
    let (lines, shared) = fill_and_recover(false);
    let h = &shared.health;
    let want: Vec<u64> = (0..26).chain(70..100).collect();
    assert_eq!(numbers(&lines), want, "the torn line completed");
    assert_eq!(h.file_lines_lost.load(Ordering::Relaxed), 100 - 56);
    assert!(h.file_errors.load(Ordering::Relaxed) >= 5);
}
