//! What a Rust user would build without telltale, for `bench/run`: axum
//! serving the same `/products` bytes as telltale, with axum-prometheus's
//! metrics layer (`/metrics`), tower-http's request ids and request
//! logging, written as JSON lines to a file through tracing-appender's
//! non-blocking writer.
//!
//! Usage: `telltale-axum-bench --body FILE --log-dir DIR [--port P]`.
//! Prints `axum listening on http://ADDR:PORT` once bound.

use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use axum_prometheus::PrometheusMetricLayer;
use bytes::Bytes;
use std::process::ExitCode;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

fn main() -> ExitCode {
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
                eprintln!("telltale-axum-bench: bad argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(body), Some(log_dir)) = (body, log_dir) else {
        eprintln!("usage: telltale-axum-bench --body FILE --log-dir DIR [--port P]");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&body) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            eprintln!("telltale-axum-bench: cannot read {body}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = tracing_appender::rolling::never(&log_dir, "axum.log");
    let (writer, _guard) = tracing_appender::non_blocking(file);
    tracing_subscriber::fmt()
        .json()
        .with_max_level(Level::INFO)
        .with_current_span(true)
        .with_writer(writer)
        .init();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async move {
        let (prometheus, metrics) = PrometheusMetricLayer::pair();
        let app = Router::new()
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
                    .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(prometheus);
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("telltale-axum-bench: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().expect("bound address");
        println!("axum listening on http://{addr}");
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            term.recv().await;
        };
        match axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("telltale-axum-bench: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
