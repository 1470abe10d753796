//! The log file output: the rolling appender, plus a way to take back a
//! line that a full disk cut short ([`TakeBack`]).
//!
//! The appender opens its files for appending and does not show its
//! descriptor, so the file it writes now is opened again by name (the
//! newest one, as [`Locate`] finds it) and cut there: its next write still
//! goes to the end, now at a line boundary.

use super::pagecache::Locate;
use super::sink::TakeBack;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// The appender `W` and where its current file is.
pub struct LogFile<W> {
    inner: W,
    locate: Locate,
}

impl<W: Write> LogFile<W> {
    /// `inner` must append to the files `locate` finds.
    pub fn new(inner: W, locate: Locate) -> Self {
        LogFile { inner, locate }
    }
}

impl<W: Write> Write for LogFile<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> TakeBack for LogFile<W> {
    fn take_back(&mut self, fragment: &[u8]) -> bool {
        let Some(path) = self.locate.newest() else {
            return false;
        };
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        else {
            return false;
        };
        cut_torn_line(&file, fragment).unwrap_or(false)
    }
}

/// Removes `fragment` from the end of `file` if the file ends with it,
/// right after a `\n` (or at its start); says whether it did. Anything
/// else (the appender rotated to a new file between two writes) is left
/// alone.
pub fn cut_torn_line(file: &File, fragment: &[u8]) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let Ok(cut) = u64::try_from(fragment.len()) else {
        return Ok(false);
    };
    if fragment.is_empty() || cut > len {
        return Ok(false);
    }
    let at = len - cut;
    // The fragment and the byte before it, which must end a line.
    let before = u64::from(at > 0);
    let mut tail = vec![0; fragment.len() + usize::from(at > 0)];
    file.read_exact_at(&mut tail, at - before)?;
    if (at > 0 && tail[0] != b'\n') || tail[tail.len() - fragment.len()..] != *fragment {
        return Ok(false);
    }
    file.set_len(at)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that holds `text`, open for reading and writing.
    fn file_with(dir: &std::path::Path, text: &str) -> File {
        let path = dir.join("t.log");
        std::fs::write(&path, text).unwrap();
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn only_a_fragment_at_the_end_after_a_whole_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let f = file_with(dir.path(), "{\"a\":1}\n{\"b\":");
        assert!(!cut_torn_line(&f, b"\"b\":").unwrap(), "not after a \\n");
        assert!(!cut_torn_line(&f, b"{\"c\":").unwrap(), "other bytes");
        assert!(cut_torn_line(&f, b"{\"b\":").unwrap());
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert_eq!(text, "{\"a\":1}\n");
        let f = file_with(dir.path(), "{\"b\":");
        assert!(cut_torn_line(&f, b"{\"b\":").unwrap(), "at the start");
        assert_eq!(f.metadata().unwrap().len(), 0);
    }

    /// The appender's own descriptor (opened for appending) writes on at
    /// the new end, with no hole.
    #[test]
    fn an_appending_writer_goes_on_at_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.x.log");
        let mut appender = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        appender.write_all(b"one\ntw").unwrap();
        let locate = Locate::Newest {
            dir: dir.path().into(),
            prefix: "app.".into(),
            suffix: ".log".into(),
        };
        let mut file = LogFile::new(std::io::sink(), locate);
        assert!(file.take_back(b"tw"));
        appender.write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\nthree\n");
    }
}
