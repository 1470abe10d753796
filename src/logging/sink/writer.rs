//! The writer thread: it sleeps until lines arrive, gathers a batch, takes
//! every thread's queue, merges their lines in timestamp order (rendering
//! request records in their place) and hands the result to [`Outputs`].

use super::output::{death_lines, Outputs, TakeBack, Which, WriterOutput};
use super::{relock, Queue, WriterShared, BATCH, GATHER};
use crate::logging::request_line::Style;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How the writer thread renders queued request lines, and its scratch space.
pub(super) struct Render {
    style: Style,
    spans: String,
}

impl Render {
    pub(super) fn new(ansi: bool) -> Self {
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
pub(super) fn merge(
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
pub(super) fn writer<F: Write + TakeBack, C: Write + TakeBack>(
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
