//! The one tracing layer: every event becomes a flat JSON line for the file
//! and a human line for the console, from a single pass over its fields.
//!
//! One layer rather than `tracing_subscriber::fmt` plus a JSON layer because
//! the request line is on the hot path, and the fmt layer renders every span
//! and event field through `Debug`, once more for the console than for the
//! file (bench/NOTES.md, "What profiling found", item 1).
//! Here each field is rendered once per format, strings are escaped a run at
//! a time, the timestamp is formatted once, and buffers are reused per thread.
//!
//! Here: the layer, its field visitor and the request and span fields of a
//! line. Escaping, numbers, levels and timestamps are in `layer/format.rs`.

mod format;

pub(super) use format::{
    console_level, json_level, now_micros, push_json_str, push_text_str, push_thousandths,
    push_timestamp_at, push_u64,
};
use format::thousandths;
use super::request::RequestFields;
use super::sink::Sink;
use std::cell::RefCell;
use std::fmt::Write as _;
#[cfg(any(test, feature = "internals"))]
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Where lines go.
pub enum Output {
    /// Console lines only, written at once under the stderr lock
    /// (short-lived commands).
    #[cfg(any(test, feature = "internals"))]
    Stderr,
    /// JSON lines to the file and console lines to stderr, queued to a
    /// writer thread (`serve`).
    Sink(Sink),
}

pub struct LogLayer {
    pub output: Output,
    /// Color the console level.
    pub ansi: bool,
}

/// A span's fields, pre-rendered in one allocation: `,"k":v` pairs, then
/// ` k=v` pairs from `split` on.
struct SpanFields {
    buf: String,
    split: usize,
}

impl SpanFields {
    fn new(json: &str, text: &str) -> Self {
        let mut buf = String::with_capacity(json.len() + text.len());
        buf.push_str(json);
        buf.push_str(text);
        SpanFields {
            buf,
            split: json.len(),
        }
    }
    fn json(&self) -> &str {
        &self.buf[..self.split]
    }
    fn text(&self) -> &str {
        &self.buf[self.split..]
    }
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
        self.key(f);
        push_u64(self.json, v);
        push_u64(self.text, v);
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.key(f);
        for out in [&mut *self.json, &mut *self.text] {
            if v < 0 {
                out.push('-');
            }
            push_u64(out, v.unsigned_abs());
        }
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        if let Some(ms) = thousandths(v) {
            self.key(f);
            let at = self.json.len();
            push_thousandths(self.json, ms);
            let rendered = &self.json[at..];
            self.text.push_str(rendered);
        } else if v.is_finite() {
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


impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let render = |b: &mut Bufs| {
            b.json.clear();
            b.text.clear();
            attrs.record(&mut Visitor {
                json: &mut b.json,
                text: &mut b.text,
                message: None,
                scratch: &mut b.scratch,
            });
            SpanFields::new(&b.json, &b.text)
        };
        let fields = BUFS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut b) => render(&mut b),
            Err(_) => render(&mut Bufs::default()),
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    /// Fields recorded after creation (rare): re-render the pair.
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                let (mut json, mut text) = (fields.json().to_string(), fields.text().to_string());
                values.record(&mut Visitor {
                    json: &mut json,
                    text: &mut text,
                    message: None,
                    scratch: &mut String::new(),
                });
                *fields = SpanFields::new(&json, &text);
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
        // One walk over the enclosing spans fills both renderings.
        let spans_text = scratch;
        spans_text.clear();
        line.clear();
        line.push_str("{\"timestamp\":\"");
        let stamp_at = line.len();
        let key = now_micros();
        push_timestamp_at(line, key);
        let stamp = stamp_at..line.len();
        line.push_str("\",\"level\":\"");
        line.push_str(json_level(meta.level()));
        line.push_str("\",\"logger\":");
        push_json_str(line, meta.target());
        line.push_str(",\"message\":");
        push_json_str(line, message);
        super::identity::push(line);
        // The innermost child span the event is in (its `span_id`).
        let mut child = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                spans_text.push_str(span.name());
                let ext = span.extensions();
                if let Some(c) = ext.get::<super::spans::ChildSpan>() {
                    child = Some(c.span_id);
                }
                if let Some(f) = ext.get::<SpanFields>() {
                    line.push_str(f.json());
                    if !f.text().is_empty() {
                        spans_text.push('{');
                        spans_text.push_str(&f.text()[1..]);
                        spans_text.push('}');
                    }
                }
                spans_text.push_str(": ");
            }
        }
        super::request::with_current(|r, route, caller, span| {
            push_request_fields(line, spans_text, r);
            if let Some(route) = route {
                push_span_field(line, spans_text, "route", route);
            }
            if let Some(caller) = caller {
                push_span_field(line, spans_text, "caller", caller);
            }
            if let Some(s) = span {
                push_trace_fields(line, spans_text, s.trace_id, child.unwrap_or(s.span_id));
            }
        });
        line.push_str(json);
        line.push_str("}\n");

        // The console line reuses the event's JSON buffer, now copied.
        let human = json;
        human.clear();
        human.push_str(&line[stamp]);
        human.push(' ');
        human.push_str(console_level(meta.level(), self.ansi));
        human.push(' ');
        human.push_str(spans_text);
        human.push_str(meta.target());
        human.push_str(": ");
        human.push_str(message);
        human.push_str(text);
        human.push('\n');
        match &self.output {
            Output::Sink(s) => s.push(key, line, human),
            #[cfg(any(test, feature = "internals"))]
            Output::Stderr => {
                let _ = std::io::stderr().lock().write_all(human.as_bytes());
            }
        }
    }
}

/// Appends the current request's fields: `,"request_id":…,"method":…,"path":…`
/// to the JSON line and `request{request_id=… method=… path=…}: ` to the
/// console line's span part (shared by events and request lines).
pub(super) fn push_request_fields(line: &mut String, spans_text: &mut String, r: &RequestFields) {
    // The id and the method are plain by construction (see `RequestId` and
    // `RequestFields::method`): no escape scan.
    let (request_id, method) = (r.request_id(), r.method.as_str());
    for part in [
        ",\"request_id\":\"",
        request_id,
        "\",\"method\":\"",
        method,
        "\",\"path\":",
    ] {
        line.push_str(part);
    }
    push_json_str(line, r.path());
    for part in [
        "request{request_id=",
        request_id,
        " method=",
        method,
        " path=",
    ] {
        spans_text.push_str(part);
    }
    push_text_str(spans_text, r.path());
    spans_text.push_str("}: ");
}

/// Appends `trace_id` and `span_id` (hex digits: no escape needed).
pub(super) fn push_trace_fields(
    line: &mut String,
    spans_text: &mut String,
    trace: crate::traces::TraceId,
    span: crate::traces::SpanId,
) {
    let (t, s) = (trace.hex(), span.hex());
    for part in [
        ",\"trace_id\":\"",
        t.as_str(),
        "\",\"span_id\":\"",
        s.as_str(),
        "\"",
    ] {
        line.push_str(part);
    }
    spans_text.truncate(spans_text.len() - 3);
    for part in [" trace_id=", t.as_str(), " span_id=", s.as_str(), "}: "] {
        spans_text.push_str(part);
    }
}

/// Appends `,"name":value` to the JSON line and ` name=value` inside the
/// request span's braces of the console line (`... path=/x name=value}: `).
pub(super) fn push_span_field(line: &mut String, spans_text: &mut String, name: &str, value: &str) {
    line.push_str(",\"");
    line.push_str(name);
    line.push_str("\":");
    push_json_str(line, value);
    spans_text.truncate(spans_text.len() - 3);
    spans_text.push(' ');
    spans_text.push_str(name);
    spans_text.push('=');
    push_text_str(spans_text, value);
    spans_text.push_str("}: ");
}
