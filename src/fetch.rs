//! Bounded reading of what a server sends, shared by `verify` and `chaos`:
//! a response body is read chunk by chunk and given up past a cap (with an
//! error naming the URL), and server-provided text is made safe to print.
//!
//! ```text
//! response ─► chunk() … ─► past the cap? ─► BodyError::TooLarge { url, cap }
//! server text ─► printable() ─► terminal / JSON report
//! ```

use std::fmt;

/// Most bytes `verify` reads of one Prometheus or Loki answer (64 MiB: a
/// query answer that size is a query to fix, not one to show).
pub const VERIFY_BODY_CAP: usize = 64 << 20;

/// Why a body was not read to its end.
#[derive(Debug)]
pub enum BodyError {
    /// The body is longer than the cap; reading stopped there.
    TooLarge { url: String, cap: usize },
    /// The connection failed (or timed out) while reading.
    Transport { url: String, error: String },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { url, cap } => write!(
                f,
                "{url}: the response body is larger than {} (the most read of one response); stopped reading",
                size(*cap)
            ),
            BodyError::Transport { url, error } => {
                write!(f, "{url}: reading the response body failed: {error}")
            }
        }
    }
}

/// `67108864` → `64 MiB`; other sizes in bytes.
pub fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads chunks of `resp` and hands each to `sink`, stopping with
/// `TooLarge` as soon as more than `cap` bytes came (or the declared
/// length says they will). Returns the bytes read.
async fn each_chunk(
    mut resp: reqwest::Response,
    cap: usize,
    mut sink: impl FnMut(&[u8]),
) -> Result<usize, BodyError> {
    let url = printable(resp.url().as_str());
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge { url, cap });
    }
    let mut read = 0usize;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                read = read.saturating_add(c.len());
                if read > cap {
                    return Err(BodyError::TooLarge { url, cap });
                }
                sink(&c);
            }
            Ok(None) => return Ok(read),
            Err(e) => {
                return Err(BodyError::Transport {
                    url,
                    error: printable(&e.to_string()),
                })
            }
        }
    }
}

/// The whole body of `resp`, at most `cap` bytes of it.
pub async fn read_capped(resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    each_chunk(resp, cap, |c| body.extend_from_slice(c)).await?;
    Ok(body)
}

/// Reads and discards the body of `resp` (at most `cap` bytes); returns its length.
pub async fn drain_capped(resp: reqwest::Response, cap: usize) -> Result<usize, BodyError> {
    each_chunk(resp, cap, |_| {}).await
}

/// Server-provided text made safe for a terminal and a report: control
/// characters (C0, DEL, C1: escape sequences, bells, carriage returns) and
/// the Unicode line, paragraph and bidirectional-override characters are
/// removed; tabs and line breaks become spaces.
pub fn printable(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() || invisible(c) => None,
            c => Some(c),
        })
        .collect()
}

/// Format characters that reorder or break what a terminal shows.
fn invisible(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_are_removed() {
        let hostile =
            "bad\u{1b}[31m red\u{1b}]0;title\u{7}\u{9b}2J\u{7f} \u{202e}gnp.exe\r\nnext\u{2028}";
        let clean = printable(hostile);
        assert_eq!(clean, "bad[31m red]0;title2J gnp.exe  next");
        assert!(!clean.chars().any(char::is_control));
    }

    #[test]
    fn sizes_read_as_mebibytes() {
        assert_eq!(size(VERIFY_BODY_CAP), "64 MiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
