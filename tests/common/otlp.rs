//! An OTLP/HTTP trace receiver on loopback, for tests: it decodes every
//! export with the official OpenTelemetry protobuf definitions
//! (`opentelemetry-proto`) and keeps the spans, each with its resource.
//! It can be told to fail (503) or to answer slowly.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{handler, web::Data, EndpointExt, Response, Route};
use prost::Message;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A received span and the resource it came with.
#[derive(Debug, Clone)]
pub struct Received {
    pub resource: Vec<KeyValue>,
    pub scope: String,
    pub span: Span,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
    /// A span attribute, as text (strings as they are, numbers printed).
    pub fn attr(&self, key: &str) -> Option<String> {
        value_text(&self.span.attributes, key)
    }
    /// A resource attribute, as text.
    pub fn resource(&self, key: &str) -> Option<String> {
        value_text(&self.resource, key)
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn value_text(kvs: &[KeyValue], key: &str) -> Option<String> {
    let v = kvs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(f) => f.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

#[derive(Default)]
struct State {
    spans: Mutex<Vec<Received>>,
    /// Answer 503 to every export while set.
    failing: AtomicBool,
    /// Wait this long before answering each export.
    delay_ms: AtomicU64,
    exports: AtomicU64,
    bad_content_type: AtomicU64,
}

/// The receiver; stops with the test's runtime.
pub struct Otlp {
    /// `http://127.0.0.1:PORT` (the base, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it).
    pub base: String,
    state: Arc<State>,
}

#[handler]
async fn traces(req: &poem::Request, body: poem::Body, state: Data<&Arc<State>>) -> Response {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != "application/x-protobuf" {
        state.bad_content_type.fetch_add(1, Ordering::Relaxed);
        return Response::builder()
            .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .finish();
    }
    let delay = state.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if state.failing.load(Ordering::Relaxed) {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body("receiver down for the test");
    }
    let bytes = match body.into_bytes_limit(16 << 20).await {
        Ok(b) => b,
        Err(_) => return Response::builder().status(StatusCode::BAD_REQUEST).finish(),
    };
    let Ok(req) = ExportTraceServiceRequest::decode(bytes) else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body("not an ExportTraceServiceRequest");
    };
    state.exports.fetch_add(1, Ordering::Relaxed);
    let mut got = Vec::new();
    for rs in req.resource_spans {
        let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).unwrap_or_default();
            for span in ss.spans {
                got.push(Received {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    span,
                });
            }
        }
    }
    state.spans.lock().unwrap().extend(got);
    Response::builder()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse::default().encode_to_vec())
}

impl Otlp {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> Otlp {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let state = Arc::new(State::default());
        let app = Route::new()
            .at("/v1/traces", poem::post(traces))
            .data(state.clone());
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Otlp {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.state.spans.lock().unwrap().clone()
    }

    /// How many exports were decoded.
    pub fn exports(&self) -> u64 {
        self.state.exports.load(Ordering::Relaxed)
    }

    /// Exports refused for a content type other than protobuf.
    pub fn bad_content_type(&self) -> u64 {
        self.state.bad_content_type.load(Ordering::Relaxed)
    }

    pub fn set_failing(&self, on: bool) {
        self.state.failing.store(on, Ordering::Relaxed);
    }

    pub fn set_delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Waits (up to `within`) until a span satisfies `pred`, and returns it.
    pub async fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        let until = Instant::now() + within;
        loop {
            if let Some(s) = self.spans().into_iter().find(|s| pred(s)) {
                return Some(s);
            }
            if Instant::now() > until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
