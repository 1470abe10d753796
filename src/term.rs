//! Writing to the user's terminal: never a panic, and never a server's
//! text as it came.
//!
//! `println!` panics when stdout is a closed pipe (`telltale schema | true`),
//! and `eprintln!` when stderr is. The commands print through [`outln!`]
//! and [`errln!`] instead: a write that fails is dropped, and the command
//! ends with its own exit status.
//!
//! [`clean`] takes the control characters out of text that came from
//! elsewhere (a Prometheus's error string), so that a hostile server's
//! escape sequences never reach the terminal.

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

/// `text` without control characters (C0 but tab and newline, DEL, C1)
/// and without the line and paragraph separators U+2028/U+2029, each
/// replaced by `�` so that the reader sees something was there.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' => c,
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clean_takes_out_escape_sequences_and_keeps_the_text() {
        assert_eq!(
            super::clean("bad \u{1b}[2J\u{1b}]0;owned\u{7}query\u{9b}31m\r\n"),
            "bad \u{FFFD}[2J\u{FFFD}]0;owned\u{FFFD}query\u{FFFD}31m\u{FFFD}\n"
        );
        assert_eq!(super::clean("plain é ✓\ttab"), "plain é ✓\ttab");
    }
}
