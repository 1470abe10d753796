//! The console output: stderr, written so that a console which stops
//! reading cannot stall the log file behind it.
//!
//! On a pipe or a socket (where a reader that stops reading blocks a
//! writer forever), stderr is switched to non-blocking mode and a write
//! waits at most [`PATIENCE`] for room; then it fails, and the writer drops
//! that batch of console lines (`sink.rs`) and goes on with the file. A
//! terminal or a regular file is written as it is.

use std::io::{self, Write};
use std::time::Duration;

/// Longest a console write waits for a reader to make room.
pub const PATIENCE: Duration = Duration::from_secs(1);

/// stderr, with bounded waits on pipes and sockets.
pub struct Console {
    #[cfg(target_os = "linux")]
    nonblocking: bool,
}

impl Console {
    pub fn new() -> Console {
        Console {
            #[cfg(target_os = "linux")]
            nonblocking: linux::make_nonblocking_if_pipe(),
        }
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if self.nonblocking {
            return linux::write_patiently(buf);
        }
        io::stderr().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// A line cut short on the console is completed at its next write: stderr
/// may be a pipe, and a file it is redirected to need not be appended to.
impl super::sink::TakeBack for Console {}

#[cfg(target_os = "linux")]
mod linux {
    use super::PATIENCE;
    use std::io;

    const FD: i32 = 2;

    /// Sets O_NONBLOCK on stderr if it is a FIFO or a socket.
    pub fn make_nonblocking_if_pipe() -> bool {
        // SAFETY: fstat and fcntl on fd 2 with a valid out-pointer; no memory
        // is shared with Rust code.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(FD, &mut st) != 0 {
                return false;
            }
            let kind = st.st_mode & libc::S_IFMT;
            if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
                return false;
            }
            let flags = libc::fcntl(FD, libc::F_GETFL);
            flags >= 0 && libc::fcntl(FD, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
        }
    }

    /// One write; if the pipe is full, waits up to [`PATIENCE`] for room.
    pub fn write_patiently(buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: writes from a valid slice of `buf.len()` bytes.
            let n = unsafe { libc::write(FD, buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    let mut p = libc::pollfd {
                        fd: FD,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    let r = unsafe { libc::poll(&mut p, 1, PATIENCE.as_millis() as i32) };
                    if r == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the console's reader took no output for {} ms",
                                PATIENCE.as_millis()
                            ),
                        ));
                    }
                }
                _ => return Err(e),
            }
        }
    }
}
