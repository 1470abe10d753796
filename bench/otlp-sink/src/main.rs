//! The OTLP/HTTP receiver of `bench/run`'s traced cases: accepts
//! `POST /v1/traces` (`Content-Type: application/x-protobuf`), decodes each
//! body with the official OpenTelemetry protobuf definitions
//! (`opentelemetry-proto`) into an `ExportTraceServiceRequest`, counts its
//! spans and answers 200 with an empty `ExportTraceServiceResponse`.
//!
//! - `GET /count`: the spans received so far, one number.
//! - `GET /stats`: `name value` lines: `spans`, `server_spans` (kind
//!   SERVER), `spans_with_parent` (a parent span id, as when a request's
//!   `traceparent` is continued), `exports` (requests decoded), `bytes`
//!   (their bodies) and `rejected` (bodies refused: wrong type, encoding or
//!   undecodable).
//!
//! Usage: `telltale-otlp-sink [--port P]` (or `OTLP_SINK_PORT`; 0, the
//! default, picks one). Listens on 127.0.0.1 only, on one thread, and
//! prints `otlp-sink listening on http://ADDR:PORT` once bound.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;

/// What has been received, on the sink's one thread.
#[derive(Default)]
struct Counts {
    spans: Cell<u64>,
    server_spans: Cell<u64>,
    spans_with_parent: Cell<u64>,
    exports: Cell<u64>,
    bytes: Cell<u64>,
    rejected: Cell<u64>,
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

fn answer(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn text(status: StatusCode, s: String) -> Response<Full<Bytes>> {
    answer(status, "text/plain; charset=utf-8", Bytes::from(s))
}

async fn handle(req: Request<Incoming>, counts: Rc<Counts>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/traces") => {
            let protobuf = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(';').next() == Some("application/x-protobuf"));
            let encoded = req
                .headers()
                .get(CONTENT_ENCODING)
                .is_some_and(|v| v.as_bytes() != b"identity");
            if !protobuf || encoded {
                add(&counts.rejected, 1);
                return text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "want Content-Type: application/x-protobuf, no Content-Encoding\n".into(),
                );
            }
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    add(&counts.rejected, 1);
                    return text(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}\n"));
                }
            };
            let export = match ExportTraceServiceRequest::decode(body.as_ref()) {
                Ok(m) => m,
                Err(e) => {
                    add(&counts.rejected, 1);
                    return text(StatusCode::BAD_REQUEST, format!("not an ExportTraceServiceRequest: {e}\n"));
                }
            };
            let (mut spans, mut server, mut parented) = (0, 0, 0);
            for s in export
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                spans += 1;
                server += u64::from(s.kind == SpanKind::Server as i32);
                parented += u64::from(!s.parent_span_id.is_empty());
            }
            add(&counts.spans, spans);
            add(&counts.server_spans, server);
            add(&counts.spans_with_parent, parented);
            add(&counts.exports, 1);
            add(&counts.bytes, body.len() as u64);
            // No partial_success: every span was accepted.
            let ok = ExportTraceServiceResponse::default().encode_to_vec();
            answer(StatusCode::OK, "application/x-protobuf", Bytes::from(ok))
        }
        (&Method::GET, "/count") => text(StatusCode::OK, format!("{}\n", counts.spans.get())),
        (&Method::GET, "/stats") => text(
            StatusCode::OK,
            format!(
                "spans {}\nserver_spans {}\nspans_with_parent {}\nexports {}\nbytes {}\nrejected {}\n",
                counts.spans.get(),
                counts.server_spans.get(),
                counts.spans_with_parent.get(),
                counts.exports.get(),
                counts.bytes.get(),
                counts.rejected.get()
            ),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

async fn run(port: u16) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("otlp-sink listening on http://{addr}");
    let counts = Rc::new(Counts::default());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    loop {
        let stream = tokio::select! {
            _ = term.recv() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("otlp-sink: accept: {e}");
                    continue;
                }
            },
        };
        let counts = counts.clone();
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |req| {
                let counts = counts.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, counts).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("otlp-sink: connection: {e}");
            }
        });
    }
}

fn main() -> ExitCode {
    let mut port = std::env::var("OTLP_SINK_PORT").ok();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--port", Some(v)) => port = Some(v),
            (other, _) => {
                eprintln!("usage: telltale-otlp-sink [--port P] (bad argument {other:?})");
                return ExitCode::from(2);
            }
        }
    }
    let port = match port.as_deref().map_or(Ok(0), str::parse::<u16>) {
        Ok(p) => p,
        Err(_) => {
            eprintln!("telltale-otlp-sink: bad port {port:?}");
            return ExitCode::from(2);
        }
    };
    // One thread: the receiver should take as little of the shared cores
    // from the servers under test as it can.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("telltale-otlp-sink: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match tokio::task::LocalSet::new().block_on(&rt, run(port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telltale-otlp-sink: {e}");
            ExitCode::FAILURE
        }
    }
}
