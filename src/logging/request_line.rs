//! The request line: the one log line every request writes, queued as a
//! record by the request thread and rendered by the log writer thread.
//!
//! Every other event goes through `tracing` and is rendered where it
//! happens (`layer.rs`). The request line does not, because it is the only
//! line on the hot path: `bench/run`'s cases showed it at nearly all of
//! logging's cost, and most of that was not the rendering's instructions but
//! the request threads touching the logging code and streaming both
//! rendered lines (about 450 bytes) through their queues between requests.
//! A record is a fixed-size copy of the request's fields, and the writer
//! renders a whole batch at once, its code and buffers warm.
//!
//! The line is byte for byte what the layer writes for the equivalent
//! `tracing` event (a test checks it), so the file and console formats do not
//! depend on which path a line took. What it gives up: `tracing` layers
//! other than telltale's own do not see it (telltale installs no others).

use super::layer::{
    console_level, json_level, now_micros, push_json_str, push_request_fields, push_span_field,
    push_text_str, push_thousandths, push_timestamp_at, push_trace_fields, push_u64,
};
use super::request::RequestFields;
use super::sink::Sink;
use std::sync::OnceLock;
use tracing::level_filters::LevelFilter;
use tracing::Level;

/// The request line's `logger` (its tracing target).
pub const TARGET: &str = "telltale::http";

/// One finished request, as the middleware saw it.
pub struct RequestLine {
    pub fields: RequestFields,
    pub status: u16,
    /// Time to the response, in whole microseconds.
    pub duration_us: u64,
    /// The route template that answered (a closed set, see
    /// `HttpMetrics::template`).
    pub route: &'static str,
    /// The authenticated caller's principal, if any.
    pub caller: Option<super::request::Name>,
    /// The request's trace and server span, when tracing is on.
    pub trace: Option<(crate::traces::TraceId, crate::traces::SpanId)>,
}

/// Where request lines go: the sink of the installed logger, if any.
static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends request lines to `sink` from now on. Called once, by the logger
/// that was installed.
pub(super) fn install(sink: Sink) {
    let _ = SINK.set(sink);
}

/// A request line's level: `error` for 5xx, `warning` for 4xx, else `info`.
fn level_of(status: u16) -> Level {
    match status {
        500.. => Level::ERROR,
        400..=499 => Level::WARN,
        _ => Level::INFO,
    }
}

/// A request line's message, by status like its level.
fn message_of(status: u16) -> &'static str {
    match status {
        500.. => "request failed",
        400..=499 => "request rejected",
        _ => "request completed",
    }
}

impl RequestLine {
    /// `error` for 5xx, `warning` for 4xx, else `info`.
    pub fn level(&self) -> Level {
        level_of(self.status)
    }

    /// Queues the line, stamped now, if its level is enabled and a logger
    /// is installed.
    pub fn log(self) {
        if self.level() > LevelFilter::current() {
            return;
        }
        if let Some(sink) = SINK.get() {
            sink.push_record(now_micros(), self);
        }
    }

    /// Appends the JSON line and the console line, each with its `\n`,
    /// stamped `micros` since the epoch. `spans` is scratch space.
    pub(super) fn render(
        &self,
        micros: u64,
        style: &Style,
        file: &mut String,
        console: &mut String,
        spans: &mut String,
    ) {
        let parts = &style.levels[match self.status {
            500.. => 0,
            400..=499 => 1,
            _ => 2,
        }];
        file.push_str("{\"timestamp\":\"");
        let stamp = file.len();
        push_timestamp_at(file, micros);
        let stamp = stamp..file.len();
        file.push_str(&parts.json);
        super::identity::push(file);
        spans.clear();
        push_request_fields(file, spans, &self.fields);
        if let Some(caller) = &self.caller {
            push_span_field(file, spans, "caller", caller.as_str());
        }
        if let Some((trace, span)) = self.trace {
            push_trace_fields(file, spans, trace, span);
        }
        file.push_str(",\"status\":");
        push_u64(file, self.status.into());
        file.push_str(",\"duration_ms\":");
        push_thousandths(file, self.duration_us);
        file.push_str(",\"route\":");
        push_json_str(file, self.route);
        file.push_str("}\n");

        console.push_str(&file[stamp]);
        console.push_str(&parts.console_level);
        console.push_str(spans);
        console.push_str(&parts.console);
        push_u64(console, self.status.into());
        console.push_str(" duration_ms=");
        push_thousandths(console, self.duration_us);
        console.push_str(" route=");
        push_text_str(console, self.route);
        console.push('\n');
    }
}

/// The parts of a request line that depend only on its level (and on the
/// console's colors), rendered once by the writer thread.
pub(super) struct Style {
    /// Error, warning, info.
    levels: [LevelParts; 3],
}

struct LevelParts {
    /// `","level":…,"logger":…,"message":…` (after the timestamp).
    json: String,
    /// ` LEVEL ` (after the timestamp).
    console_level: String,
    /// `telltale::http: request completed status=` (after the request's fields).
    console: String,
}

impl Style {
    pub(super) fn new(ansi: bool) -> Self {
        let parts = |status: u16| {
            let (level, message) = (level_of(status), message_of(status));
            let mut json = String::from("\",\"level\":\"");
            json.push_str(json_level(&level));
            json.push_str("\",\"logger\":");
            push_json_str(&mut json, TARGET);
            json.push_str(",\"message\":");
            push_json_str(&mut json, message);
            LevelParts {
                json,
                console_level: format!(" {} ", console_level(&level, ansi)),
                console: format!("{TARGET}: {message} status="),
            }
        };
        // In the order `render` picks them.
        Style {
            levels: [parts(500), parts(400), parts(200)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::layer::{LogLayer, Output};
    use super::super::request::{self, RequestId, RequestScope};
    use super::super::sink::tests::Out;
    use super::*;
    use poem::http::{HeaderValue, Method};
    use tracing_subscriber::layer::SubscriberExt;

    fn fields(id: &str, method: Method, path: &str) -> RequestFields {
        let id = RequestId::from_header(&HeaderValue::from_str(id).unwrap()).unwrap();
        RequestFields::new(&id, method, path)
    }

    /// The timestamp is the only part that differs between two lines
    /// written at different times; it has a fixed width.
    fn without_stamp(line: &str, json: bool) -> String {
        let at = if json { "{\"timestamp\":\"".len() } else { 0 };
        let stamp = &line[at..at + "2026-01-02T03:04:05.123456Z".len()];
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{line}"
        );
        line.replacen(stamp, "<stamp>", 1)
    }

    /// A request line rendered from a record is byte for byte the line the
    /// layer writes for the same request as a `tracing` event, at every
    /// level, with and without colors, for plain and awkward paths.
    #[test]
    fn a_record_renders_exactly_like_the_equivalent_tracing_event() {
        let long = format!("/{}", "long".repeat(40));
        let cases = [
            (200u16, 1234u64, "/products", "/products", Method::GET),
            (404, 7, "/products/{id}", "/products/42", Method::GET),
            (500, 1_000_000, "/orders", "/orders", Method::POST),
            (413, 0, "unmatched", "/a b\"c\\d\u{e9}", Method::PUT),
            (201, 999_999, "/x", long.as_str(), Method::DELETE),
        ];
        crate::logging::request::log_caller(true);
        for ansi in [false, true] {
            let (file, console) = (Out::default(), Out::default());
            let (sink, guard) = Sink::spawn(file.clone(), console.clone(), "test-sink", ansi);
            let subscriber = tracing_subscriber::registry().with(LogLayer {
                output: Output::Sink(sink.clone()),
                ansi,
            });
            tracing::subscriber::with_default(subscriber, || {
                for (status, micros, route, path, method) in &cases {
                    let f = || fields("id-1", method.clone(), path);
                    let duration_ms = *micros as f64 / 1e3;
                    use crate::logging::request::{Caller, Name};
                    let caller = (*status == 201).then(|| Name::new("al\"ice"));
                    let ctx = RequestScope::new(Some(f()));
                    if let Some(c) = &caller {
                        let _ = ctx.caller.set(Box::new(Caller::new(
                            Name::new("key"),
                            c.clone(),
                            Vec::new(),
                            None,
                        )));
                    }
                    request::sync_scope(ctx, || match *status {
                        500.. => {
                            tracing::error!(target: "telltale::http", status, duration_ms, route, "request failed")
                        }
                        400.. => {
                            tracing::warn!(target: "telltale::http", status, duration_ms, route, "request rejected")
                        }
                        _ => {
                            tracing::info!(target: "telltale::http", status, duration_ms, route, "request completed")
                        }
                    });
                    let line = RequestLine {
                        fields: f(),
                        status: *status,
                        duration_us: *micros,
                        route,
                        caller,
                        trace: None,
                    };
                    sink.push_record(now_micros(), line);
                }
            });
            drop(guard);
            let (file, console) = (file.text(), console.text());
            let (file, console): (Vec<_>, Vec<_>) =
                (file.lines().collect(), console.lines().collect());
            assert_eq!(file.len(), 2 * cases.len());
            assert_eq!(console.len(), 2 * cases.len());
            for pair in file.chunks(2) {
                assert_eq!(without_stamp(pair[0], true), without_stamp(pair[1], true));
                let v: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
                assert_eq!(v["logger"], TARGET);
            }
            for pair in console.chunks(2) {
                assert_eq!(without_stamp(pair[0], false), without_stamp(pair[1], false));
                assert_eq!(pair[1].contains("\x1b["), ansi, "{}", pair[1]);
            }
        }
    }

    #[test]
    fn levels_and_messages_follow_the_status() {
        let line = |status| RequestLine {
            fields: fields("x", Method::GET, "/"),
            status,
            duration_us: 1,
            route: "/",
            caller: None,
            trace: None,
        };
        for (status, level, message) in [
            (200, Level::INFO, "request completed"),
            (308, Level::INFO, "request completed"),
            (400, Level::WARN, "request rejected"),
            (499, Level::WARN, "request rejected"),
            (500, Level::ERROR, "request failed"),
            (599, Level::ERROR, "request failed"),
        ] {
            assert_eq!(line(status).level(), level, "{status}");
            assert_eq!(message_of(status), message, "{status}");
        }
    }
}
