//! Logging: human-readable lines on the console, one flat JSON object per
//! line in rotated files, both made by one layer (`layer.rs`). Request
//! threads only format the lines and queue them; a writer thread writes in
//! batches (`sink.rs`). The request line itself is queued as a record and
//! rendered by the writer (`request_line.rs`).
//!
//! The writers are *not* lossy: when the queue is full, request threads wait
//! rather than drop lines, and the returned guard writes everything out on
//! drop. So after a graceful shutdown, N requests have left N request lines
//! in the file.

mod console;
mod file;
pub mod identity;
mod layer;
mod pagecache;
pub mod request;
mod request_line;
mod sink;
pub mod spans;

pub use request_line::RequestLine;

use crate::manifest::{LogLevel, Logging, Rotation};
use file::LogFile;
use layer::{LogLayer, Output};
use pagecache::{DropBehind, Locate};
use sink::{Sink, SinkGuard};
use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use tracing_appender::rolling::RollingFileAppender;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Log files are `<file>.<period>.log` (`<file>.log` without rotation).
const SUFFIX: &str = "log";

/// The installed writer, for [`health`].
static HEALTH: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

/// The log writer's state: `None` when no file log is installed (console
/// only, or `logging.enabled: false`).
pub fn health() -> Option<&'static sink::Health> {
    HEALTH.get().map(Sink::health)
}

#[cfg(any(test, feature = "internals"))]
pub use sink::Health;

/// Keeps the writer thread alive; dropping it writes out every line.
pub struct LogGuard {
    _writer: Option<SinkGuard>,
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// Console only (for `validate`, `render`, `chaos`).
#[cfg(any(test, feature = "internals"))]
pub fn init_console(level: LogLevel) {
    let _ = tracing_subscriber::registry()
        .with(level_filter(level))
        .with(LogLayer {
            output: Output::Stderr,
            ansi: std::io::stderr().is_terminal(),
        })
        .try_init();
}

/// What `serve` writes on the console (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConsoleFormat {
    /// Human-readable lines (colored on a terminal).
    #[default]
    Text,
    /// The same JSON lines as the log file: for a container, whose output
    /// is what the cluster's log collector reads.
    Json,
}

/// A `tracing` layer of the user's (`App::layer`): installed beneath
/// telltale's own, it sees every span and event (a `tracing-opentelemetry`
/// layer, a metrics layer).
pub type UserLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Console plus the JSON file of `cfg` (for `serve`); nothing at all when
/// `cfg.enabled` is false, so every log macro is a disabled no-op. Without
/// `file`, the console is the only output (a container's: its collector
/// reads it) and no log directory is made.
pub fn init(
    cfg: &Logging,
    format: ConsoleFormat,
    file: bool,
    layers: Vec<UserLayer>,
) -> Result<LogGuard, String> {
    if !cfg.enabled {
        if !layers.is_empty() {
            tracing_subscriber::registry()
                .with(layers)
                .with(spans::SpanLayer)
                .try_init()
                .map_err(already_set)?;
        }
        return Ok(LogGuard { _writer: None });
    }
    let json_console = format == ConsoleFormat::Json;
    let ansi = !json_console && std::io::stderr().is_terminal();
    if !file {
        let console = console::Console::new();
        let (sink, guard) =
            Sink::spawn_with(std::io::sink(), console, "telltale-log", ansi, json_console);
        return install(cfg, sink, guard, ansi, layers);
    }
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
        .filename_suffix(SUFFIX)
        .max_log_files(cfg.max_files)
        .build(&cfg.dir)
        .map_err(|e| format!("cannot open log file in {}: {e}", cfg.dir))?;
    // Request threads only format and queue lines; the writes happen on
    // this thread.
    let newest = || Locate::Newest {
        dir: cfg.dir.clone().into(),
        prefix: format!("{}.", cfg.file),
        suffix: format!(".{SUFFIX}"),
    };
    // A line a full disk cuts short is taken back out of the file.
    let appender = LogFile::new(appender, newest());
    let (sink, guard) = if cfg.drop_page_cache {
        // What has been written is dropped from the page cache behind the
        // writer, in the file and in stderr if it is redirected to a file.
        let file = DropBehind::new(appender, newest());
        let stderr = std::io::stderr();
        let console_file = stderr.as_fd().try_clone_to_owned().map(File::from);
        let console = DropBehind::new(console::Console::new(), Locate::Fd(console_file));
        Sink::spawn_with(file, console, "telltale-log", ansi, json_console)
    } else {
        let console = console::Console::new();
        Sink::spawn_with(appender, console, "telltale-log", ansi, json_console)
    };
    install(cfg, sink, guard, ansi, layers)
}

/// The message when a subscriber was installed before telltale's.
fn already_set(e: impl std::fmt::Display) -> String {
    format!(
        "cannot install the logger: {e} (telltale installs the tracing subscriber itself: \
         add your own layers with App::layer instead of installing a subscriber)"
    )
}

/// Installs `sink` as the global logger at `cfg.level`.
fn install(
    cfg: &Logging,
    sink: Sink,
    guard: SinkGuard,
    ansi: bool,
    layers: Vec<UserLayer>,
) -> Result<LogGuard, String> {
    let _ = HEALTH.set(sink.clone());
    request::log_caller(cfg.fields.iter().any(|f| f == "caller"));
    let level = level_filter(cfg.level);
    // One global filter, not one per layer: per-layer filters are
    // re-evaluated on every span and event, a global one is cached per callsite.
    // An empty list of layers would be a layer interested in nothing (it
    // turned every event off): none is `None`, which passes everything.
    let layers = (!layers.is_empty()).then_some(layers);
    tracing_subscriber::registry()
        .with(layers)
        .with(level)
        .with(LogLayer {
            output: Output::Sink(sink.clone()),
            ansi,
        })
        .with(spans::SpanLayer)
        .try_init()
        .map_err(already_set)?;
    request_line::install(sink);
    Ok(LogGuard {
        _writer: Some(guard),
    })
}
