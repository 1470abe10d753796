//! Logging: human-readable lines on the console, one flat JSON object per
//! line in rotated files, written through a non-blocking writer.
//!
//! The file writer is *not* lossy: when its buffer is full the logging
//! thread waits rather than dropping lines, and the returned guard flushes
//! everything on drop. So after a graceful shutdown, N requests have left N
//! request lines in the file.

use crate::manifest::{Logging, Rotation};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::RollingFileAppender;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Keeps the file writer alive; dropping it flushes the log.
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

fn level_filter(level: &str) -> LevelFilter {
    level.parse().unwrap_or(LevelFilter::INFO)
}

/// Console only (for `validate`, `render`, `chaos`).
pub fn init_console(level: &str) {
    let _ = tracing_subscriber::registry()
        .with(console_layer().with_filter(level_filter(level)))
        .try_init();
}

fn console_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
}

/// Console plus the JSON file of `cfg` (for `serve`).
pub fn init(cfg: &Logging) -> Result<LogGuard, String> {
    std::fs::create_dir_all(&cfg.dir)
        .map_err(|e| format!("cannot create log directory {}: {e}", cfg.dir))?;
    let rotation = match cfg.rotation {
        Rotation::Minutely => tracing_appender::rolling::Rotation::MINUTELY,
        Rotation::Hourly => tracing_appender::rolling::Rotation::HOURLY,
        Rotation::Daily => tracing_appender::rolling::Rotation::DAILY,
        Rotation::Never => tracing_appender::rolling::Rotation::NEVER,
    };
    let appender = RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(&cfg.file)
        .filename_suffix("log")
        .max_log_files(cfg.max_files)
        .build(&cfg.dir)
        .map_err(|e| format!("cannot open log file in {}: {e}", cfg.dir))?;
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .thread_name("telltale-log")
        .finish(appender);
    let level = level_filter(&cfg.level);
    tracing_subscriber::registry()
        .with(console_layer().with_filter(level))
        .with(JsonLayer { writer }.with_filter(level))
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(LogGuard { _file: Some(guard) })
}

/// Writes each event as one flat JSON object: timestamp, level, logger,
/// message, the fields of every enclosing span, then the event's fields.
pub struct JsonLayer {
    writer: NonBlocking,
}

/// A span's fields, pre-rendered as `,"k":v` pairs.
struct SpanFields(String);

struct JsonVisitor<'a> {
    out: &'a mut String,
    message: Option<String>,
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl JsonVisitor<'_> {
    fn key(&mut self, f: &Field) {
        self.out.push(',');
        push_json_str(self.out, f.name());
        self.out.push(':');
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            self.message = Some(v.to_string());
            return;
        }
        self.key(f);
        push_json_str(self.out, v);
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.key(f);
        let _ = write!(self.out, "{v}");
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.key(f);
        let _ = write!(self.out, "{v}");
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.key(f);
        if v.is_finite() {
            let _ = write!(self.out, "{v}");
        } else {
            self.out.push_str("null");
        }
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.key(f);
        self.out.push_str(if v { "true" } else { "false" });
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        let s = format!("{v:?}");
        self.record_str(f, &s);
    }
}

fn level_str(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut out = String::new();
        let mut v = JsonVisitor {
            out: &mut out,
            message: None,
        };
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(out));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                let mut v = JsonVisitor {
                    out: &mut fields.0,
                    message: None,
                };
                values.record(&mut v);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = String::new();
        let mut v = JsonVisitor {
            out: &mut fields,
            message: None,
        };
        event.record(&mut v);
        let message = v.message.take().unwrap_or_default();
        let mut line = String::with_capacity(256 + fields.len());
        line.push_str("{\"timestamp\":\"");
        let _ = write!(
            line,
            "{}",
            humantime::format_rfc3339_micros(std::time::SystemTime::now())
        );
        line.push_str("\",\"level\":\"");
        line.push_str(level_str(meta.level()));
        line.push_str("\",\"logger\":");
        push_json_str(&mut line, meta.target());
        line.push_str(",\"message\":");
        push_json_str(&mut line, &message);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    line.push_str(&f.0);
                }
            }
        }
        line.push_str(&fields);
        line.push_str("}\n");
        // One write per line: the non-blocking writer keeps lines whole.
        let mut w = self.writer.clone();
        let _ = w.write_all(line.as_bytes());
    }
}
