//! The traced comparison of `bench/run` (issue 25): `bench/axum` (axum
//! serving the same `/products` bytes as telltale, axum-prometheus's
//! metrics layer, tower-http's request ids and request logging as JSON lines
//! through tracing-appender) plus traces the way a Rust user adds them:
//! tracing-opentelemetry turns tower-http's request span into an
//! OpenTelemetry server span (the OpenTelemetry HTTP conventions' names),
//! continuing an incoming `traceparent` (the W3C TraceContext propagator),
//! sampled `always_on`, batched by the SDK's batch span processor and sent by
//! opentelemetry-otlp over HTTP/protobuf.
//!
//! Usage: `telltale-axum-otel-bench --body FILE --log-dir DIR [--port P]`.
//! The receiver is the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), read by opentelemetry-otlp. The
//! batch processor is set up as telltale's defaults (a queue of 4096 spans,
//! batches of 512, sent at least every second). Prints
//! `axum-otel listening on http://ADDR:PORT` once bound; on SIGTERM, stops
//! and flushes the spans still queued.

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Response};
use axum::routing::get;
use axum::Router;
use axum_prometheus::PrometheusMetricLayer;
use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use std::process::ExitCode;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};
use tracing::{field, Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The request's span: tower-http's `DefaultMakeSpan` fields (which the JSON
/// log lines carry, as in `bench/axum`) and the OpenTelemetry HTTP server
/// conventions (which become the exported span's name, kind and
/// attributes), its parent the incoming `traceparent` if there is one.
fn make_span(propagator: &TraceContextPropagator, req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("", |p| p.as_str());
    let method = req.method().as_str();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        uri = %req.uri(),
        version = ?req.version(),
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = field::Empty,
        url.path = req.uri().path(),
        url.scheme = "http",
        server.address = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(""),
        user_agent.original = req.headers().get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or(""),
        error.type = field::Empty,
    );
    let parent = propagator.extract(&HeaderExtractor(req.headers()));
    // Fails only if the OpenTelemetry layer is missing or the span was
    // already entered; neither can happen here.
    let _ = span.set_parent(parent);
    span
}

/// Records the status on the span, then logs the response as tower-http's
/// default does ("finished processing request", also a span event).
#[derive(Clone)]
struct RecordStatus;

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
        DefaultOnResponse::new()
            .level(Level::INFO)
            .on_response(response, latency, span);
    }
}

fn tracer_provider() -> Result<SdkTracerProvider, String> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(4096)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_span_processor(batch)
        .with_resource(
            Resource::builder()
                .with_service_name("telltale-axum-otel-bench")
                .build(),
        )
        .build())
}

/// The command line: `--body FILE --log-dir DIR [--port P]`.
struct Args {
    body: String,
    log_dir: String,
    port: u16,
}

/// Parses the command line, or says what is wrong and gives the exit code.
fn parse_args() -> Result<Args, ExitCode> {
    let mut body = None;
    let mut log_dir = None;
    let mut port = 0u16;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next();
        match (a.as_str(), v) {
            ("--body", Some(v)) => body = Some(v),
            ("--log-dir", Some(v)) => log_dir = Some(v),
            ("--port", Some(v)) => port = v.parse().unwrap_or(0),
            (other, _) => {
                eprintln!("telltale-axum-otel-bench: bad argument {other:?}");
                return Err(ExitCode::from(2));
            }
        }
    }
    let (Some(body), Some(log_dir)) = (body, log_dir) else {
        eprintln!("usage: telltale-axum-otel-bench --body FILE --log-dir DIR [--port P]");
        return Err(ExitCode::from(2));
    };
    Ok(Args {
        body,
        log_dir,
        port,
    })
}

/// JSON log lines to `DIR/axum.log` and spans to `provider`; the guard
/// flushes the log when dropped.
fn init_tracing(
    log_dir: &str,
    provider: &SdkTracerProvider,
) -> tracing_appender::non_blocking::WorkerGuard {
    let file = tracing_appender::rolling::never(log_dir, "axum.log");
    let (writer, guard) = tracing_appender::non_blocking(file);
    tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(writer),
        )
        .with(
            tracing_opentelemetry::layer().with_tracer(provider.tracer("telltale-axum-otel-bench")),
        )
        .init();
    guard
}

/// `/products` (the body's bytes) and `/metrics`, behind request ids,
/// tracing and Prometheus metrics.
fn app(bytes: Bytes) -> Router {
    let (prometheus, metrics) = PrometheusMetricLayer::pair();
    let propagator = TraceContextPropagator::new();
    Router::new()
        .route(
            "/products",
            get(move || {
                let b = bytes.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        b,
                    )
                }
            }),
        )
        .route("/metrics", get(move || async move { metrics.render() }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request| make_span(&propagator, req))
                .on_response(RecordStatus),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(prometheus)
}

/// Serves `app` on 127.0.0.1:`port` until SIGTERM.
async fn serve(app: Router, port: u16) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("telltale-axum-otel-bench: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("bound address");
    println!("axum-otel listening on http://{addr}");
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        term.recv().await;
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telltale-axum-otel-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let bytes = match std::fs::read(&args.body) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            eprintln!("telltale-axum-otel-bench: cannot read {}: {e}", args.body);
            return ExitCode::FAILURE;
        }
    };
    let provider = match tracer_provider() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("telltale-axum-otel-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _guard = init_tracing(&args.log_dir, &provider);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    // The metric layer needs the runtime: the app is built inside it.
    let code = rt.block_on(async move { serve(app(bytes), args.port).await });
    if let Err(e) = provider.shutdown() {
        eprintln!("telltale-axum-otel-bench: flushing the spans: {e}");
    }
    code
}
