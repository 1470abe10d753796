//! The OTLP/HTTP receiver of `bench/run`'s traced cases: accepts
//! `POST /v1/traces` (`Content-Type: application/x-protobuf`), walks each
//! body's protobuf wire format as an `ExportTraceServiceRequest`
//! (`resource_spans[].scope_spans[].spans[]`, the field numbers of the
//! official OpenTelemetry definitions), counts its spans and answers 200
//! with an empty `ExportTraceServiceResponse`. A body that is not
//! well-formed protobuf down to each span's fields is refused.
//!
//! It walks rather than decodes (prost into `opentelemetry-proto`'s owned
//! messages, as it did first) because it runs on the cores of the server
//! under test: the full decode cost it 1.2-1.75 µs a span, the walk a
//! tenth of that, and counts the same (the tests check both agree).
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
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
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
            let tally = match count(body.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    add(&counts.rejected, 1);
                    return text(StatusCode::BAD_REQUEST, format!("not an ExportTraceServiceRequest: {e}\n"));
                }
            };
            add(&counts.spans, tally.spans);
            add(&counts.server_spans, tally.server);
            add(&counts.spans_with_parent, tally.parented);
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

/// What one export holds.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    spans: u64,
    /// Of kind SERVER.
    server: u64,
    /// With a parent span id.
    parented: u64,
}

/// One field of a protobuf message on the wire.
enum Field<'a> {
    Varint(u64),
    Len(&'a [u8]),
    /// A fixed32 or fixed64 field (skipped).
    Fixed,
}

fn read_varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err("varint overflows 64 bits".into());
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// Calls `f` with each field of the message `b` (field number, value);
/// an error for anything protobuf does not allow (or OTLP never uses:
/// groups).
fn fields<'a>(
    b: &'a [u8],
    mut f: impl FnMut(u64, Field<'a>) -> Result<(), String>,
) -> Result<(), String> {
    let mut pos = 0;
    while pos < b.len() {
        let key = read_varint(b, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        if number == 0 || number > (1 << 29) - 1 {
            return Err(format!("field number {number}"));
        }
        let field = match wire {
            0 => Field::Varint(read_varint(b, &mut pos)?),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if b.len() - pos < n {
                    return Err("truncated fixed field".into());
                }
                pos += n;
                Field::Fixed
            }
            2 => {
                let len = read_varint(b, &mut pos)?;
                if len > (b.len() - pos) as u64 {
                    return Err("length past the end of the message".into());
                }
                let v = &b[pos..pos + len as usize];
                pos += len as usize;
                Field::Len(v)
            }
            w => return Err(format!("wire type {w} (field {number})")),
        };
        f(number, field)?;
    }
    Ok(())
}

/// A message field (`number`) of a message: its bytes, or an error when
/// the field has another wire type.
fn sub<'a>(number: u64, field: Field<'a>) -> Result<&'a [u8], String> {
    match field {
        Field::Len(b) => Ok(b),
        _ => Err(format!("field {number} is not length-delimited")),
    }
}

/// Counts the spans of an `ExportTraceServiceRequest` (its field 1,
/// `resource_spans`; their field 2, `scope_spans`; their field 2, `spans`),
/// each span's `kind` (field 6; the last one written counts, as in a
/// decode) and `parent_span_id` (field 4), without building a message.
fn count(body: &[u8]) -> Result<Tally, String> {
    let mut t = Tally::default();
    fields(body, |n, f| {
        if n != 1 {
            return Ok(());
        }
        fields(sub(n, f)?, |n, f| {
            if n != 2 {
                return Ok(());
            }
            fields(sub(n, f)?, |n, f| {
                if n != 2 {
                    return Ok(());
                }
                let (mut kind, mut parent) = (0, false);
                fields(sub(n, f)?, |n, f| {
                    match (n, f) {
                        (6, Field::Varint(v)) => kind = v,
                        (4, Field::Len(b)) => parent = !b.is_empty(),
                        (4 | 6, _) => {
                            return Err(format!("span field {n} has the wrong wire type"))
                        }
                        _ => {}
                    }
                    Ok(())
                })?;
                t.spans += 1;
                t.server += u64::from(kind == SpanKind::Server as u64);
                t.parented += u64::from(parent);
                Ok(())
            })
        })
    })?;
    Ok(t)
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};

    /// What the full decode counted.
    fn decoded(body: &[u8]) -> Tally {
        let export = ExportTraceServiceRequest::decode(body).unwrap();
        let mut t = Tally::default();
        for s in export
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            t.spans += 1;
            t.server += u64::from(s.kind == SpanKind::Server as i32);
            t.parented += u64::from(!s.parent_span_id.is_empty());
        }
        t
    }

    fn span(i: u64) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: i.to_be_bytes().to_vec(),
            parent_span_id: if i.is_multiple_of(3) {
                Vec::new()
            } else {
                vec![2; 8]
            },
            name: "x".repeat(i as usize * 10),
            kind: if i.is_multiple_of(2) {
                span::SpanKind::Server
            } else {
                span::SpanKind::Internal
            } as i32,
            start_time_unix_nano: i,
            end_time_unix_nano: i + 1,
            flags: 0x301,
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(-1)),
                }),
                ..Default::default()
            }],
            events: vec![span::Event {
                time_unix_nano: 3,
                name: "e".into(),
                ..Default::default()
            }],
            status: Some(Status::default()),
            ..Default::default()
        }
    }

    #[test]
    fn the_walk_counts_what_a_decode_counts() {
        let export = ExportTraceServiceRequest {
            resource_spans: (0..3)
                .map(|r| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    scope_spans: (0..r + 1)
                        .map(|s| ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: "s".into(),
                                ..Default::default()
                            }),
                            spans: (0..(r * 7 + s * 5)).map(span).collect(),
                            schema_url: "u".into(),
                        })
                        .collect(),
                    schema_url: String::new(),
                })
                .collect(),
        };
        let body = export.encode_to_vec();
        let t = count(&body).unwrap();
        assert_eq!(t, decoded(&body));
        assert!(
            t.spans > 20
                && t.server > 0
                && t.server < t.spans
                && t.parented > 0
                && t.parented < t.spans
        );
        assert_eq!(count(&[]).unwrap(), Tally::default());
        for cut in [1, 5, body.len() / 2, body.len() - 1] {
            assert!(
                count(&body[..cut]).is_err()
                    || ExportTraceServiceRequest::decode(&body[..cut]).is_ok(),
                "{cut}"
            );
        }
        assert!(count(&[0x0b]).is_err(), "a group");
        assert!(count(&[0x10, 0x01]).is_ok(), "an unknown field is skipped");
        assert!(count(&[0x08, 0x01]).is_err(), "resource_spans as a varint");
        assert!(
            count(&[0x0a, 0x02, 0x10, 0x01]).is_err(),
            "scope_spans as a varint"
        );
    }
}
