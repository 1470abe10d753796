//! The writer's two outputs: writing a batch to each, what a failed write
//! leaves behind ([`TakeBack`], the torn line completed later), the counts
//! in [`Health`], and the one line that reports an output's first failure
//! in the other output.

use super::Health;
use std::io::Write;
use std::sync::atomic::Ordering;

/// Which output a write went to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Which {
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
pub(super) struct WriterOutput<W: Write + TakeBack> {
    pub(super) out: W,
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
    let key = crate::logging::layer::now_micros();
    let mut stamp = String::new();
    crate::logging::layer::push_timestamp_at(&mut stamp, key);
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
pub(super) fn death_lines(why: &str) -> (String, String) {
    let message = format!(
        "the log writer stopped: {why}; log lines are dropped from now on and /ready fails"
    );
    let mut stamp = String::new();
    crate::logging::layer::push_timestamp_at(&mut stamp, crate::logging::layer::now_micros());
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
    pub(super) fn new(out: W, which: Which) -> Self {
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
pub(super) struct Outputs<F: Write + TakeBack, C: Write + TakeBack> {
    pub(super) file: WriterOutput<F>,
    pub(super) console: WriterOutput<C>,
    /// The console gets the JSON lines too.
    pub(super) json_console: bool,
}

impl<F: Write + TakeBack, C: Write + TakeBack> Outputs<F, C> {
    pub(super) fn write(&mut self, file: &str, console: &str, health: &Health) {
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
