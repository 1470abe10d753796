//! Writing to the user's terminal: never a panic, and never a server's
//! text as it came.
//!
//! `println!` panics when stdout is a closed pipe (`telltale schema | true`),
//! and `eprintln!` when stderr is. The commands print through [`outln!`]
//! and [`errln!`] instead: a write that fails is dropped, and the command
//! ends with its own exit status.
//!
//! Text that came from elsewhere (a Prometheus's error string) goes
//! through `crate::fetch::printable` first.

use std::io::Write;

/// Writes `args` to stdout; a failure (a closed pipe, a full disk) is dropped.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(args);
    let _ = stdout.flush();
}

/// Writes `args` to stderr; a failure is dropped.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `print!` that never panics.
macro_rules! out {
    ($($t:tt)*) => { $crate::term::write_out(format_args!($($t)*)) };
}
/// `println!` that never panics.
macro_rules! outln {
    ($($t:tt)*) => { $crate::term::write_out(format_args!("{}\n", format_args!($($t)*))) };
}
/// `eprint!` that never panics.
macro_rules! errout {
    ($($t:tt)*) => { $crate::term::write_err(format_args!($($t)*)) };
}
/// `eprintln!` that never panics.
macro_rules! errln {
    ($($t:tt)*) => { $crate::term::write_err(format_args!("{}\n", format_args!($($t)*))) };
}
pub(crate) use {errln, errout, out, outln};
