//! The one tracing layer: every event becomes a flat JSON line for the file
//! and a human line for the console, from a single pass over its fields.
//!
//! One layer rather than `tracing_subscriber::fmt` plus a JSON layer because
//! the request line is on the hot path: `bench/run` measured the fmt layer
//! at about two thirds of logging's cost (it renders every span and event
//! field through `Debug`, once more for the console than for the file).
//! Here each field is rendered once per format, strings are escaped a run at
//! a time, the timestamp is formatted once, and buffers are reused per thread.

use super::sink::Sink;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Where console lines go.
pub enum Console {
    /// Written at once, under the stderr lock (short-lived commands).
    Stderr,
    /// Queued to a writer thread (`serve`).
    Sink(Sink),
}

pub struct LogLayer {
    /// JSON lines, if a file is configured.
    pub file: Option<Sink>,
    pub console: Console,
    /// Color the console level.
    pub ansi: bool,
}

/// A span's fields, pre-rendered: `,"k":v` pairs and ` k=v` pairs.
#[derive(Default)]
struct SpanFields {
    json: String,
    text: String,
}

/// Per-thread scratch space, so that a log line allocates nothing.
#[derive(Default)]
struct Bufs {
    json: String,
    text: String,
    message: String,
    scratch: String,
    line: String,
}

thread_local! {
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

/// Appends `s` as a JSON string; runs that need no escape are copied whole.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Escapes are ASCII, so `start..i` is on char boundaries.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `s` bare if it is a plain token, else quoted like `Debug`.
fn push_text_str(out: &mut String, s: &str) {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b > b' ' && b != b'"' && b != b'\\' && b != 0x7f);
    if plain {
        out.push_str(s);
    } else {
        let _ = write!(out, "{s:?}");
    }
}

struct Visitor<'a> {
    json: &'a mut String,
    text: &'a mut String,
    message: Option<&'a mut String>,
    scratch: &'a mut String,
}

impl Visitor<'_> {
    fn key(&mut self, f: &Field) {
        self.json.push_str(",\"");
        // Field names are Rust identifiers: nothing to escape.
        self.json.push_str(f.name());
        self.json.push_str("\":");
        self.text.push(' ');
        self.text.push_str(f.name());
        self.text.push('=');
    }
    fn number(&mut self, f: &Field, v: impl std::fmt::Display) {
        self.key(f);
        let at = self.json.len();
        let _ = write!(self.json, "{v}");
        let rendered = &self.json[at..];
        self.text.push_str(rendered);
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                m.push_str(v);
                return;
            }
        }
        self.key(f);
        push_json_str(self.json, v);
        push_text_str(self.text, v);
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.number(f, v);
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.number(f, v);
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        if v.is_finite() {
            self.number(f, v);
        } else {
            self.key(f);
            self.json.push_str("null");
            let _ = write!(self.text, "{v}");
        }
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.number(f, v);
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                let _ = write!(m, "{v:?}");
                return;
            }
        }
        let mut s = std::mem::take(self.scratch);
        s.clear();
        let _ = write!(s, "{v:?}");
        self.record_str(f, &s);
        *self.scratch = s;
    }
}

/// The file's level names (what the shippers' pipelines match on).
fn json_level(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn console_level(l: &Level, ansi: bool) -> &'static str {
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

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = SpanFields::default();
        let mut scratch = String::new();
        attrs.record(&mut Visitor {
            json: &mut fields.json,
            text: &mut fields.text,
            message: None,
            scratch: &mut scratch,
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                let mut scratch = String::new();
                values.record(&mut Visitor {
                    json: &mut fields.json,
                    text: &mut fields.text,
                    message: None,
                    scratch: &mut scratch,
                });
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A field whose `Debug` logs would re-enter; it gets fresh buffers.
        BUFS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut b) => self.write_event(event, &ctx, &mut b),
            Err(_) => self.write_event(event, &ctx, &mut Bufs::default()),
        });
    }
}

impl LogLayer {
    fn write_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, b: &mut Bufs)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Bufs {
            json,
            text,
            message,
            scratch,
            line,
        } = b;
        json.clear();
        text.clear();
        message.clear();
        event.record(&mut Visitor {
            json,
            text,
            message: Some(message),
            scratch,
        });
        let meta = event.metadata();
        let scope = || {
            ctx.event_scope(event)
                .into_iter()
                .flat_map(|s| s.from_root())
        };
        let mut stamp = [0u8; 32];
        let stamp = timestamp(&mut stamp);

        if let Some(file) = &self.file {
            line.clear();
            line.push_str("{\"timestamp\":\"");
            line.push_str(stamp);
            line.push_str("\",\"level\":\"");
            line.push_str(json_level(meta.level()));
            line.push_str("\",\"logger\":");
            push_json_str(line, meta.target());
            line.push_str(",\"message\":");
            push_json_str(line, message);
            for span in scope() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    line.push_str(&f.json);
                }
            }
            line.push_str(json);
            line.push_str("}\n");
            file.push(line.as_bytes());
        }

        line.clear();
        line.push_str(stamp);
        line.push(' ');
        line.push_str(console_level(meta.level(), self.ansi));
        line.push(' ');
        for span in scope() {
            line.push_str(span.name());
            if let Some(f) = span.extensions().get::<SpanFields>() {
                if !f.text.is_empty() {
                    line.push('{');
                    line.push_str(&f.text[1..]);
                    line.push('}');
                }
            }
            line.push_str(": ");
        }
        line.push_str(meta.target());
        line.push_str(": ");
        line.push_str(message);
        line.push_str(text);
        line.push('\n');
        match &self.console {
            Console::Sink(s) => s.push(line.as_bytes()),
            Console::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }
}

/// Now as RFC 3339 UTC with microseconds, e.g. `2026-01-02T03:04:05.123456Z`.
fn timestamp(buf: &mut [u8; 32]) -> &str {
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(
        cur,
        "{}",
        humantime::format_rfc3339_micros(std::time::SystemTime::now())
    );
    let n = cur.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
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
