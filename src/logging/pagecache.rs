//! Keeps written log bytes from piling up in the page cache.
//!
//! A log file is written once and read, if at all, by a shipper tailing its
//! end. Left alone, the kernel keeps every byte written in the page cache
//! until memory runs short: a gigabyte of log is a gigabyte of cache, which
//! pushes out pages other programs need, and every new page costs the writer
//! an allocation. On a VM that hands free memory back to its host (as
//! `bench/run`'s does) that allocation is several times dearer and swings
//! from run to run (bench/NOTES.md, "Third round", item 13).
//!
//! [`DropBehind`] wraps a writer. Every [`STEP`] bytes it
//! - starts the kernel's writeback of what was written since the last step
//!   (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait), and
//! - tells the kernel it is done with everything more than [`KEEP`] bytes
//!   behind the end: it waits for that range's writeback, started several
//!   steps earlier and so normally long finished, then drops the now clean
//!   pages (`posix_fadvise(POSIX_FADV_DONTNEED)`).
//!
//! This is the usual way to stream a large file out without filling the
//! cache. The last `KEEP` bytes stay cached for a shipper that tails the
//! file. Nothing is lost: only clean copies of bytes already on disk are
//! dropped, and the wrapped writer's own writes are untouched.
//!
//! The wrapped writer may switch files (the rolling appender does at each
//! rotation) and does not show its descriptor, so a [`Locate`] opens the
//! current file again: a second descriptor shares the same page cache. The
//! file in use is the one that grows; when it stops growing, the file is
//! located again.
//!
//! Everything here is advice to the kernel: on a file system that cannot
//! drop pages (tmpfs), or off Linux, the calls do nothing or fail, and a
//! failure turns this off without touching the log itself.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

/// Bytes written between two rounds of advice.
pub const STEP: u64 = 4 * 1024 * 1024;
/// Bytes at the end of the file left cached (for a tailing shipper).
pub const KEEP: u64 = 16 * 1024 * 1024;

/// How to open the file a writer is currently writing to.
pub enum Locate {
    /// The newest regular file in `dir` whose name starts with `prefix` and
    /// ends with `suffix` (the rolling appender's naming).
    Newest {
        dir: PathBuf,
        prefix: String,
        suffix: String,
    },
    /// This descriptor, if it is a regular file (stderr redirected to a
    /// file; a terminal or a pipe has no page cache to drop).
    Fd(io::Result<File>),
}

impl Locate {
    /// The newest file of a [`Locate::Newest`] (`None` for a descriptor).
    pub fn newest(&self) -> Option<PathBuf> {
        let Locate::Newest {
            dir,
            prefix,
            suffix,
        } = self
        else {
            return None;
        };
        let newest = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(prefix.as_str()) && name.ends_with(suffix.as_str())
            })
            .filter_map(|e| {
                let meta = e.metadata().ok().filter(|m| m.is_file())?;
                Some((meta.modified().ok()?, e.path()))
            })
            .max()?;
        Some(newest.1)
    }

    fn open(&self) -> Option<File> {
        match self {
            Locate::Newest { .. } => File::open(self.newest()?).ok(),
            Locate::Fd(file) => {
                let file = file.as_ref().ok()?;
                file.metadata().ok().filter(|m| m.is_file())?;
                file.try_clone().ok()
            }
        }
    }
}

/// The file being advised about and how far each advice has got.
struct Tracked {
    file: File,
    /// Bytes handed to writeback so far.
    started: u64,
    /// Bytes dropped from the cache so far.
    dropped: u64,
}

/// A writer whose output file does not stay in the page cache (see the
/// module docs).
pub struct DropBehind<W> {
    inner: W,
    locate: Locate,
    tracked: Option<Tracked>,
    /// Bytes written since the last round of advice.
    since: u64,
    /// Turned off after the kernel refused advice.
    off: bool,
}

impl<W: Write> DropBehind<W> {
    pub fn new(inner: W, locate: Locate) -> Self {
        DropBehind {
            inner,
            locate,
            tracked: None,
            since: 0,
            off: false,
        }
    }

    /// One round of advice on the current file; a file that has stopped
    /// growing is finished and the current one located again.
    fn advise(&mut self) {
        let grown = |t: &Tracked| t.file.metadata().is_ok_and(|m| m.len() > t.started);
        if !self.tracked.as_ref().is_some_and(grown) {
            if let Some(mut old) = self.tracked.take() {
                // Rotated away (or the same file with nothing new): what is
                // left of it, up to KEEP, is dropped by the kernel's own
                // reclaim in time.
                let _ = advance(&mut old);
            }
            self.tracked = self.locate.open().map(|file| Tracked {
                file,
                started: 0,
                dropped: 0,
            });
        }
        if let Some(t) = &mut self.tracked {
            if advance(t).is_err() {
                self.off = true;
                self.tracked = None;
            }
        }
    }
}

/// Starts writeback up to the end of `t`'s file and drops what lies more
/// than [`KEEP`] behind it.
fn advance(t: &mut Tracked) -> io::Result<()> {
    let size = t.file.metadata()?.len();
    if size > t.started {
        sys::start_writeback(&t.file, t.started, size - t.started)?;
        t.started = size;
    }
    let end = size.saturating_sub(KEEP);
    if end > t.dropped {
        sys::drop_clean(&t.file, t.dropped, end - t.dropped)?;
        t.dropped = end;
    }
    Ok(())
}

impl<W: super::sink::TakeBack> super::sink::TakeBack for DropBehind<W> {
    fn take_back(&mut self, fragment: &[u8]) -> bool {
        self.inner.take_back(fragment)
    }
}

impl<W: Write> Write for DropBehind<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.since += n as u64;
        Ok(n)
    }

    /// Flushes the wrapped writer, then gives a round of advice if
    /// [`STEP`] bytes have been written since the last.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        if self.since >= STEP && !self.off {
            self.since = 0;
            self.advise();
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    fn off(n: u64) -> io::Result<libc::off64_t> {
        n.try_into().map_err(|_| io::ErrorKind::InvalidInput.into())
    }

    /// Starts writing `len` bytes at `from` back to disk; does not wait.
    pub fn start_writeback(file: &File, from: u64, len: u64) -> io::Result<()> {
        // SAFETY: the descriptor is open for the duration of the call (we
        // borrow its `File`), and the call reads no memory of ours.
        let r = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                off(from)?,
                off(len)?,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits until `len` bytes at `from` are on disk, then drops them from
    /// the page cache.
    pub fn drop_clean(file: &File, from: u64, len: u64) -> io::Result<()> {
        let (fd, from, len) = (file.as_raw_fd(), off(from)?, off(len)?);
        let wait = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: as above; neither call touches memory of ours.
        let r = unsafe { libc::sync_file_range(fd, from, len, wait) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above. posix_fadvise returns the error number itself.
        match unsafe { libc::posix_fadvise(fd, from, len, libc::POSIX_FADV_DONTNEED) } {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::fs::File;
    use std::io;

    pub fn start_writeback(_: &File, _: u64, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub fn drop_clean(_: &File, _: u64, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
#[path = "../../tests/common/fincore.rs"]
mod fincore;

#[cfg(test)]
mod tests {
    use super::fincore::resident;
    use super::*;
    use std::path::Path;

    const MIB: u64 = 1024 * 1024;

    /// A directory on the file system the tests were built on (a disk, not
    /// tmpfs, whose pages cannot be dropped).
    fn disk_dir() -> tempfile::TempDir {
        let exe = std::env::current_exe().unwrap();
        tempfile::tempdir_in(exe.parent().unwrap()).unwrap()
    }

    fn append(path: &Path) -> File {
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    /// Writes `mib` MiB to `out` in 64 KiB writes with a flush after every
    /// MiB (as the log writer flushes after every batch); each byte is its
    /// offset modulo 251, so a lost or repeated byte shows.
    fn write_mib(out: &mut impl Write, mib: u64, from: u64) {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut at = from;
        for _ in 0..mib * 16 {
            for b in chunk.iter_mut() {
                *b = (at % 251) as u8;
                at += 1;
            }
            out.write_all(&chunk).unwrap();
            if at.is_multiple_of(MIB) {
                out.flush().unwrap();
            }
        }
    }

    fn assert_intact(path: &Path, len: u64) {
        let data = std::fs::read(path).unwrap();
        assert_eq!(
            data.len() as u64,
            len,
            "{} lost or gained bytes",
            path.display()
        );
        let bad = data
            .iter()
            .enumerate()
            .position(|(i, &b)| b != (i as u64 % 251) as u8);
        assert_eq!(bad, None, "{} has a wrong byte", path.display());
    }

    #[test]
    fn written_pages_do_not_stay_cached_and_no_byte_is_lost() {
        let dir = disk_dir();
        // Control: without the wrapper the kernel keeps what was written.
        let plain = dir.path().join("plain.log");
        write_mib(&mut append(&plain), 48, 0);
        let kept = resident(&plain);
        assert!(
            kept >= 40 * MIB,
            "only {kept} B of 48 MiB written stayed cached without DropBehind; \
             {} cannot show whether pages are dropped",
            dir.path().display()
        );

        let path = dir.path().join("app.2026-11-25.log");
        let locate = Locate::Newest {
            dir: dir.path().into(),
            prefix: "app.".into(),
            suffix: ".log".into(),
        };
        let mut out = DropBehind::new(append(&path), locate);
        write_mib(&mut out, 48, 0);
        let left = resident(&path);
        assert!(
            left <= KEEP + STEP,
            "{left} B of 48 MiB still cached; at most KEEP + STEP = {} B should be",
            KEEP + STEP
        );
        // The end (what a shipper tails) is what stays.
        assert!(
            left >= KEEP / 2,
            "only {left} B cached: the tail was dropped too"
        );
        drop(out);
        assert_intact(&path, 48 * MIB);
    }

    /// Writes to whichever file `to` names, as the rolling appender does.
    struct Rolling {
        to: PathBuf,
        file: File,
    }
    impl Write for Rolling {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.file.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.file.flush()
        }
    }

    #[test]
    fn after_a_rotation_the_new_file_is_found_and_followed() {
        let dir = disk_dir();
        let (first, second) = (dir.path().join("app.1.log"), dir.path().join("app.2.log"));
        // Another program's file with the same prefix but not the suffix.
        std::fs::write(dir.path().join("app.3.gz"), b"x").unwrap();
        let inner = Rolling {
            to: first.clone(),
            file: append(&first),
        };
        let locate = Locate::Newest {
            dir: dir.path().into(),
            prefix: "app.".into(),
            suffix: ".log".into(),
        };
        let mut out = DropBehind::new(inner, locate);
        write_mib(&mut out, 32, 0);
        out.inner.to = second.clone();
        out.inner.file = append(&out.inner.to);
        write_mib(&mut out, 32, 0);
        for path in [&first, &second] {
            let left = resident(path);
            assert!(
                left <= KEEP + 2 * STEP,
                "{}: {left} B of 32 MiB still cached",
                path.display()
            );
        }
        drop(out);
        assert_intact(&first, 32 * MIB);
        assert_intact(&second, 32 * MIB);
    }

    #[test]
    fn a_descriptor_that_is_not_a_file_is_left_alone() {
        let mut out = DropBehind::new(Vec::new(), Locate::Fd(File::open("/dev/null")));
        write_mib(&mut out, STEP / MIB + 1, 0);
        assert!(out.tracked.is_none());
        assert!(!out.off, "a terminal or pipe is not an error");
        assert_eq!(out.inner.len() as u64, STEP + MIB);
    }
}
