//! The text of a log line, written straight into a `String`: JSON string
//! escaping and console quoting a run at a time, numbers without the `fmt`
//! machinery, level names, and the timestamp, formatted once per second.

use std::cell::RefCell;
use std::fmt::Write as _;
use tracing::Level;

/// Bytes that need an escape inside a JSON string.
static JSON_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Bytes that make a console value need quotes.
static TEXT_QUOTE: [bool; 256] = {
    let mut t = JSON_ESCAPE;
    t[b' ' as usize] = true;
    t[0x7f] = true;
    t
};

/// Length of the longest prefix of `s` whose bytes are all `false` in
/// `table`. Eight bytes at a time while no byte of the chunk can be in the
/// table (`special` says so for a whole word), then byte by byte: log values
/// are mostly clean, so this is most of the cost of escaping them.
fn clean_prefix(s: &[u8], table: &[bool; 256], special: fn(u64) -> bool) -> usize {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if special(word) {
            break;
        }
        i += 8;
    }
    i + s[i..].iter().take_while(|&&b| !table[b as usize]).count()
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `x` is below `n` (n <= 128). Exact as a yes/no.
const fn has_less(x: u64, n: u8) -> bool {
    x.wrapping_sub(ONES * n as u64) & !x & HIGHS != 0
}

/// Whether any byte of `x` equals `b`.
const fn has_byte(x: u64, b: u8) -> bool {
    has_less(x ^ (ONES * b as u64), 1)
}

/// A word that may hold a byte of [`JSON_ESCAPE`].
fn json_special(x: u64) -> bool {
    has_less(x, 0x20) || has_byte(x, b'"') || has_byte(x, b'\\')
}

/// A word that may hold a byte of [`TEXT_QUOTE`].
fn text_special(x: u64) -> bool {
    has_less(x, 0x21) || has_byte(x, b'"') || has_byte(x, b'\\') || has_byte(x, 0x7f)
}

/// Appends `s` as a JSON string; runs that need no escape are copied whole.
pub(in crate::logging) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    loop {
        let n = clean_prefix(rest.as_bytes(), &JSON_ESCAPE, json_special);
        // Escaped bytes are ASCII, so `n` is on a char boundary.
        out.push_str(&rest[..n]);
        let Some(&b) = rest.as_bytes().get(n) else {
            break;
        };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        rest = &rest[n + 1..];
    }
    out.push('"');
}

/// Appends `s` bare if it is a plain token, else quoted like `Debug`.
pub(in crate::logging) fn push_text_str(out: &mut String, s: &str) {
    if !s.is_empty() && clean_prefix(s.as_bytes(), &TEXT_QUOTE, text_special) == s.len() {
        out.push_str(s);
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// `v` as a whole number of thousandths, if it is exactly one (such as a
/// duration rounded to the microsecond, in milliseconds) and small.
pub(super) fn thousandths(v: f64) -> Option<u64> {
    let k = (v * 1000.0).round();
    (v >= 0.0 && k < 1e15 && k / 1000.0 == v).then_some(k as u64)
}

/// Writes `n` in decimal (itoa, not the `fmt` machinery: this is per request).
pub(in crate::logging) fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Writes `k / 1000` the way `Display` writes that `f64` (shortest form, no
/// trailing zeros, e.g. `12.5`, `0.001`, `3`), without the float formatter.
pub(in crate::logging) fn push_thousandths(out: &mut String, k: u64) {
    let (int, mut frac) = (k / 1000, k % 1000);
    push_u64(out, int);
    if frac != 0 {
        let mut width = 3;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        out.push('.');
        let mut buf = [b'0'; 3];
        for d in buf[..width].iter_mut().rev() {
            *d = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        out.push_str(std::str::from_utf8(&buf[..width]).unwrap_or("0"));
    }
}

/// The file's level names (what the shippers' pipelines match on).
pub(in crate::logging) fn json_level(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

pub(in crate::logging) fn console_level(l: &Level, ansi: bool) -> &'static str {
    match (*l, ansi) {
        (Level::ERROR, false) => "ERROR",
        (Level::WARN, false) => " WARN",
        (Level::INFO, false) => " INFO",
        (Level::DEBUG, false) => "DEBUG",
        (Level::TRACE, false) => "TRACE",
        (Level::ERROR, true) => "\x1b[31mERROR\x1b[0m",
        (Level::WARN, true) => "\x1b[33m WARN\x1b[0m",
        (Level::INFO, true) => "\x1b[32m INFO\x1b[0m",
        (Level::DEBUG, true) => "\x1b[34mDEBUG\x1b[0m",
        (Level::TRACE, true) => "\x1b[35mTRACE\x1b[0m",
    }
}

/// Now, in microseconds since the epoch (a line's timestamp and sort key).
pub(in crate::logging) fn now_micros() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs() * 1_000_000 + u64::from(since.subsec_micros())
}

/// Appends `micros` (since the epoch) as RFC 3339 UTC with microseconds,
/// e.g. `2026-01-02T03:04:05.123456Z`. The part up to the seconds is
/// formatted once per second per thread.
pub(in crate::logging) fn push_timestamp_at(out: &mut String, micros: u64) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let (secs, micros) = (micros / 1_000_000, (micros % 1_000_000) as u32);
    let push_seconds = |cached: &mut (u64, String), out: &mut String| {
        if cached.0 != secs {
            let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let mut s = humantime::format_rfc3339_seconds(whole).to_string();
            s.pop(); // the trailing `Z`
            *cached = (secs, s);
        }
        out.push_str(&cached.1);
    };
    let pushed = SECOND.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut cached) => push_seconds(&mut cached, out),
        Err(_) => push_seconds(&mut (u64::MAX, String::new()), out),
    });
    if pushed.is_err() {
        push_seconds(&mut (u64::MAX, String::new()), out);
    }
    let mut digits = [0u8; 6];
    let mut n = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.push('.');
    for d in digits {
        out.push(char::from(d));
    }
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_json_str(&mut out, s);
        out
    }

    #[test]
    fn json_strings_match_serde_json() {
        for s in [
            "",
            "plain",
            "quote \" and \\ back",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}",
            "unicode é ✓ 🚀",
            "a\"é\n",
        ] {
            assert_eq!(json(s), serde_json::to_string(s).unwrap(), "for {s:?}");
        }
    }

    #[test]
    fn every_byte_at_every_offset_is_escaped_and_quoted_like_the_byte_wise_rule() {
        for len in [1, 7, 8, 9, 17] {
            for at in 0..len {
                for b in 0u8..=0x7f {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    let s = String::from_utf8(v).unwrap();
                    assert_eq!(json(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
                    let mut text = String::new();
                    push_text_str(&mut text, &s);
                    let bare = !TEXT_QUOTE[b as usize];
                    assert_eq!(text == s, bare, "{s:?} gave {text}");
                }
            }
        }
        let long = format!(
            "{}\u{e9}{}\"{}",
            "x".repeat(13),
            "y".repeat(8),
            "z".repeat(30)
        );
        assert_eq!(json(&long), serde_json::to_string(&long).unwrap());
    }

    #[test]
    fn integers_print_like_display() {
        for v in [0u64, 9, 10, 404, 1_000_000, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string());
        }
    }

    #[test]
    fn thousandths_print_like_display() {
        let mut checked = 0;
        for k in (0..200_000u64).chain([999_999_999, 123_456_789_012]) {
            let v = (k as f64) / 1000.0;
            let Some(t) = thousandths(v) else { continue };
            let mut out = String::new();
            push_thousandths(&mut out, t);
            assert_eq!(out, v.to_string(), "k = {k}");
            checked += 1;
        }
        assert!(checked > 190_000);
        assert_eq!(thousandths(0.1 + 0.2), None);
        assert_eq!(thousandths(-1.0), None);
        assert_eq!(thousandths(f64::NAN), None);
    }

    /// What lets the layer write request ids and methods without a scan.
    #[test]
    fn request_ids_and_methods_never_need_an_escape_or_quotes() {
        use poem::http::{HeaderValue, Method};
        let mut ids = 0;
        let mut methods = 0;
        for b in 0u8..=0xff {
            let plain = !JSON_ESCAPE[b as usize] && !TEXT_QUOTE[b as usize];
            if let Ok(v) = HeaderValue::from_bytes(&[b'x', b]) {
                if crate::logging::request::RequestId::from_header(&v).is_some() {
                    assert!(plain, "request id byte {b:#x}");
                    ids += 1;
                }
            }
            if Method::from_bytes(&[b'X', b]).is_ok() {
                assert!(plain, "method byte {b:#x}");
                methods += 1;
            }
        }
        // Both accept something (62 alphanumerics and more), so the loop
        // above checked real cases.
        assert!(ids > 62 && methods > 62, "{ids} {methods}");
    }

    #[test]
    fn console_values_are_bare_only_when_plain() {
        let mut out = String::new();
        push_text_str(&mut out, "/products");
        out.push(' ');
        push_text_str(&mut out, "two words");
        out.push(' ');
        push_text_str(&mut out, "");
        assert_eq!(out, "/products \"two words\" \"\"");
    }
}
