//! The OTLP/HTTP exporter: request threads queue finished spans into a
//! bounded channel ([`Tracer::submit`], never blocking: a full queue drops
//! the span and counts it); one writer thread batches them (up to `batch`
//! spans, or `delay` after the first), encoding each span as it takes it
//! into the batch's OTLP `ExportTraceServiceRequest` (protobuf: the bytes
//! prost writes for the official definitions, see `encode`), and posts it. A failed export drops its batch, counts its spans and is
//! logged once per outage, with a second line when export works again.

use super::config::Config;
use super::encode::Batch;
use super::span::SpanRecord;
use super::{SpanContext, TraceParent};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long the writer sleeps between drains of the queue while a batch
/// is open.
const GATHER: Duration = Duration::from_millis(5);

/// The most bytes of an export's response read (for its error message or
/// its partial-success count).
const MAX_RESPONSE: usize = 64 << 10;

/// What the exporter has done, for `telltale_trace_*` metrics.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans the receiver accepted.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because their export failed (or the receiver rejected
    /// them).
    pub dropped_export_failed: AtomicU64,
}

enum Msg {
    Span(Box<SpanRecord>),
    /// Export what is queued, then answer.
    Flush(mpsc::Sender<()>),
}

/// The process's tracer: the sampler and the exporter's queue.
pub struct Tracer {
    sampling: super::Sampling,
    tx: SyncSender<Msg>,
    stats: Arc<ExportStats>,
    timeout: Duration,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();

/// The installed tracer (`None`: tracing is off, which costs one load).
pub fn tracer() -> Option<&'static Tracer> {
    TRACER.get()
}

/// What the exporter has done, if tracing is on.
pub fn stats() -> Option<&'static ExportStats> {
    TRACER.get().map(|t| &*t.stats)
}

/// Starts the writer thread and installs the tracer for the process. A
/// second call (the first one's tracer stays) is an error.
pub fn install(cfg: Config) -> Result<(), String> {
    let (tx, rx) = mpsc::sync_channel(cfg.queue);
    let stats = Arc::new(ExportStats::default());
    let tracer = Tracer {
        sampling: cfg.sampling,
        tx,
        stats: stats.clone(),
        timeout: cfg.timeout,
    };
    if TRACER.set(tracer).is_err() {
        return Err("a tracer is already installed in this process".into());
    }
    let writer = Writer::new(cfg, stats)?;
    std::thread::Builder::new()
        .name("telltale-trace".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| format!("cannot start the trace exporter thread: {e}"))?;
    Ok(())
}

impl Tracer {
    /// This request's span, continuing `incoming` when it came with one.
    pub fn start(&self, incoming: Option<&TraceParent>) -> SpanContext {
        self.sampling.start(incoming)
    }

    /// Queues a finished span, or drops and counts it when the queue is
    /// full. Never waits.
    pub fn submit(&self, span: SpanRecord) {
        self.submit_boxed(Box::new(span));
    }

    /// [`Tracer::submit`] for a span already in its box.
    pub fn submit_boxed(&self, span: Box<SpanRecord>) {
        match self.tx.try_send(Msg::Span(span)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped_queue_full.fetch_add(1, Relaxed);
            }
        }
    }

    /// Exports everything queued so far; waits at most the export timeout
    /// and a second (graceful shutdown).
    pub fn flush(&self) {
        let (ack, done) = mpsc::channel();
        let until = Instant::now() + self.timeout + Duration::from_secs(1);
        let mut msg = Msg::Flush(ack);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < until => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = done.recv_timeout(until.saturating_duration_since(Instant::now()));
    }
}

/// The writer thread's state.
struct Writer {
    cfg: Config,
    stats: Arc<ExportStats>,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    /// Whether the last export failed (an outage is logged once).
    failing: bool,
    /// Spans lost since the outage began.
    lost_in_outage: u64,
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

impl Writer {
    fn new(cfg: Config, stats: Arc<ExportStats>) -> Result<Writer, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &cfg.headers {
            headers.insert(k.clone(), v.clone());
        }
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-protobuf"),
        );
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| format!("cannot build the trace exporter's HTTP client: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the trace exporter's runtime: {e}"))?;
        Ok(Writer {
            cfg,
            stats,
            client,
            runtime,
            failing: false,
            lost_in_outage: 0,
        })
    }

    /// Gathers batches: blocks on the channel only while no batch is open
    /// (one wake-up per batch); while one is, sleeps [`GATHER`] at a time
    /// and drains what was queued meanwhile, so that queueing a span never
    /// wakes this thread: woken per span, it preempted a worker on 2 cores
    /// (bench/NOTES.md, "Traces: a span per request, exported").
    fn run(mut self, rx: Receiver<Msg>) {
        let resource = Resource {
            attributes: self
                .cfg
                .resource
                .iter()
                .map(|(k, v)| string_kv(k, v))
                .collect(),
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "telltale".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let mut batch = Batch::new(&resource.encode_to_vec(), &scope.encode_to_vec());
        let mut opened: Option<Instant> = None;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(m) => self.take(m, &mut batch, &mut opened),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.export(&mut batch);
                        return;
                    }
                }
            }
            match opened {
                Some(t) if t.elapsed() >= self.cfg.delay => {
                    self.export(&mut batch);
                    opened = None;
                }
                Some(t) => {
                    std::thread::sleep(GATHER.min(self.cfg.delay.saturating_sub(t.elapsed())))
                }
                None => match rx.recv() {
                    Ok(m) => self.take(m, &mut batch, &mut opened),
                    Err(_) => return,
                },
            }
        }
    }

    /// Adds a span to the open batch (sending it when full), or flushes.
    fn take(&mut self, m: Msg, batch: &mut Batch, opened: &mut Option<Instant>) {
        match m {
            Msg::Span(span) => {
                opened.get_or_insert_with(Instant::now);
                batch.push(&span);
                if batch.len() >= self.cfg.batch {
                    self.export(batch);
                    *opened = None;
                }
            }
            Msg::Flush(ack) => {
                self.export(batch);
                *opened = None;
                let _ = ack.send(());
            }
        }
    }

    /// Sends the spans of `batch` (at most `batch` of them: it is sent as
    /// soon as it holds that many), if any, emptying it.
    fn export(&mut self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        let body = batch.take();
        let result = self
            .runtime
            .block_on(post(&self.client, &self.cfg.url, body));
        match result {
            Ok(rejected) => {
                let rejected = rejected.min(n as u64);
                self.stats.exported.fetch_add(n as u64 - rejected, Relaxed);
                self.stats
                    .dropped_export_failed
                    .fetch_add(rejected, Relaxed);
                if self.failing {
                    tracing::info!(
                        target: "telltale::traces",
                        endpoint = %self.cfg.url,
                        lost = self.lost_in_outage,
                        "trace export works again"
                    );
                    self.failing = false;
                    self.lost_in_outage = 0;
                }
            }
            Err(e) => {
                self.stats
                    .dropped_export_failed
                    .fetch_add(n as u64, Relaxed);
                self.lost_in_outage += n as u64;
                if !self.failing {
                    tracing::warn!(
                        target: "telltale::traces",
                        endpoint = %self.cfg.url,
                        error = %e,
                        "trace export failed; spans are dropped (and counted in telltale_trace_spans_dropped_total) until it works again"
                    );
                    self.failing = true;
                }
            }
        }
    }
}

/// Posts one export; `Ok` with the number of spans the receiver rejected
/// (OTLP partial success).
async fn post(client: &reqwest::Client, url: &reqwest::Url, body: Vec<u8>) -> Result<u64, String> {
    let mut resp = client
        .post(url.clone())
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let mut got = Vec::new();
    while got.len() < MAX_RESPONSE {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c[..c.len().min(MAX_RESPONSE - got.len())]),
            Ok(None) => break,
            Err(e) if status.is_success() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&got);
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    let rejected = ExportTraceServiceResponse::decode(got.as_slice())
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected_spans.max(0) as u64);
    Ok(rejected)
}
