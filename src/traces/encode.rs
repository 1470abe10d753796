//! OTLP protobuf written straight from [`SpanRecord`]s: the bytes prost
//! writes for the official `opentelemetry-proto` messages
//! ([`SpanRecord::into_otlp`], wrapped in an `ExportTraceServiceRequest`),
//! without building those messages first (about fifteen `String`s and a
//! few `Vec`s a span). The tests below check that both encodings are the
//! same bytes for every kind of span.
//!
//! Proto3 as prost encodes it: fields in tag order, a scalar or string
//! field left out when it holds its default, a set message field always
//! written (even empty), a oneof's variant always written.

use super::span::{cut, Body, Http, SpanEvent, SpanRecord, Value, MAX_VALUE};
use poem::http::Method;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `opentelemetry.proto.trace.v1.Span.SpanKind`.
const KIND_INTERNAL: u64 = 1;
const KIND_SERVER: u64 = 2;
const KIND_CLIENT: u64 = 3;
/// `opentelemetry.proto.trace.v1.Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;

/// The methods the HTTP semantic conventions know; any other is `_OTHER`.
pub(crate) const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u32) {
    varint(buf, u64::from(field << 3 | wire));
}

/// A length-delimited field (string, bytes), left out when empty.
fn bytes(buf: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        bytes_always(buf, field, v);
    }
}

fn bytes_always(buf: &mut Vec<u8>, field: u32, v: &[u8]) {
    key(buf, field, LEN);
    varint(buf, v.len() as u64);
    buf.extend_from_slice(v);
}

/// A varint field (uint32, int64, enum), left out when zero.
fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, VARINT);
        varint(buf, v);
    }
}

fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, FIXED64);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(buf, field, FIXED32);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// A message field written by `body`, its length put in front of it
/// afterwards (one byte reserved; moved along when it needs more).
fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    let n = varint_len(len as u64);
    if n > 1 {
        buf.resize(buf.len() + n - 1, 0);
        buf.copy_within(at + 1..at + 1 + len, at + n);
    }
    let mut v = len as u64;
    for b in &mut buf[at..at + n] {
        *b = v as u8 | 0x80;
        v >>= 7;
    }
    buf[at + n - 1] &= 0x7f;
}

/// An attribute (`KeyValue`) of a string value.
fn str_attr(buf: &mut Vec<u8>, field: u32, k: &str, v: &str) {
    message(buf, field, |b| {
        bytes(b, 1, k.as_bytes());
        message(b, 2, |b| bytes_always(b, 1, v.as_bytes()));
    });
}

fn int_attr(buf: &mut Vec<u8>, field: u32, k: &str, v: i64) {
    message(buf, field, |b| {
        bytes(b, 1, k.as_bytes());
        message(b, 2, |b| {
            key(b, 3, VARINT);
            varint(b, v as u64);
        });
    });
}

fn attr(buf: &mut Vec<u8>, field: u32, k: &str, v: &Value) {
    match v {
        Value::Str(t) => str_attr(buf, field, k, t),
        Value::Int(i) => int_attr(buf, field, k, *i),
        Value::F64(f) => message(buf, field, |b| {
            bytes(b, 1, k.as_bytes());
            message(b, 2, |b| {
                key(b, 4, FIXED64);
                b.extend_from_slice(&f.to_bits().to_le_bytes());
            });
        }),
        Value::Bool(x) => message(buf, field, |b| {
            bytes(b, 1, k.as_bytes());
            message(b, 2, |b| {
                key(b, 2, VARINT);
                varint(b, u64::from(*x));
            });
        }),
    }
}

/// `Host`'s name and port (`api:8080`, `[::1]:8080`, `api`).
pub(crate) fn split_host(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((v6, after)) = rest.split_once(']') {
            return (v6, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (host, None),
    }
}

/// The span name and attributes (field 9) of a server span, as
/// [`SpanRecord::into_otlp`] makes them; returns the name's two parts.
fn server_name(h: &Http) -> (&str, Option<&'static str>) {
    let original = h.method.as_ref().map(Method::as_str);
    let known = original.is_some_and(|m| KNOWN_METHODS.contains(&m));
    let prefix = if known {
        original.unwrap_or("_OTHER")
    } else {
        "HTTP"
    };
    (prefix, h.route)
}

fn server_attributes(buf: &mut Vec<u8>, h: &Http) {
    let original = h.method.as_ref().map(Method::as_str);
    let known = original.is_some_and(|m| KNOWN_METHODS.contains(&m));
    let method = original.filter(|_| known).unwrap_or("_OTHER");
    str_attr(buf, 9, "http.request.method", method);
    if let Some(m) = original.filter(|_| !known) {
        str_attr(buf, 9, "http.request.method_original", cut(m, MAX_VALUE));
    }
    if let Some(route) = h.route {
        str_attr(buf, 9, "http.route", route);
    }
    int_attr(buf, 9, "http.response.status_code", h.status.into());
    if !h.path.is_empty() {
        str_attr(buf, 9, "url.path", &h.path);
    }
    str_attr(buf, 9, "url.scheme", h.scheme);
    let host = h.host.as_deref().map(split_host);
    if let Some((name, _)) = host.filter(|(n, _)| !n.is_empty()) {
        str_attr(buf, 9, "server.address", name);
    }
    let port = host.and_then(|(_, p)| p).unwrap_or(h.port);
    int_attr(buf, 9, "server.port", port.into());
    if let Some(ua) = h.user_agent.as_deref() {
        str_attr(buf, 9, "user_agent.original", ua);
    }
    if h.status >= 500 {
        str_attr(buf, 9, "error.type", itoa::Buffer::new().format(h.status));
    }
}

fn event(buf: &mut Vec<u8>, e: &SpanEvent) {
    message(buf, 11, |b| {
        fixed64(b, 1, e.time_ns);
        bytes(b, 2, e.name.as_bytes());
        for (k, v) in &e.attributes {
            attr(b, 3, k, v);
        }
    });
}

/// Appends `r` as a `Span` message in field `field` of the message being
/// written (`ScopeSpans.spans`, field 2).
pub fn span(buf: &mut Vec<u8>, field: u32, r: &SpanRecord) {
    message(buf, field, |b| {
        bytes(b, 1, &r.trace_id.0);
        bytes(b, 2, &r.span_id.0);
        bytes(
            b,
            3,
            r.trace_state.as_deref().unwrap_or_default().as_bytes(),
        );
        if let Some(p) = r.parent {
            bytes(b, 4, &p.0);
        }
        let kind = match &r.body {
            Body::Server(h) => {
                let (prefix, route) = server_name(h);
                match route {
                    Some(route) => {
                        key(b, 5, LEN);
                        varint(b, (prefix.len() + 1 + route.len()) as u64);
                        b.extend_from_slice(prefix.as_bytes());
                        b.push(b' ');
                        b.extend_from_slice(route.as_bytes());
                    }
                    None => bytes(b, 5, prefix.as_bytes()),
                }
                KIND_SERVER
            }
            Body::Internal { name, .. } => {
                bytes(b, 5, name.as_bytes());
                KIND_INTERNAL
            }
            Body::Client { name, .. } => {
                bytes(b, 5, name.as_bytes());
                KIND_CLIENT
            }
        };
        uint(b, 6, kind);
        fixed64(b, 7, r.start_ns);
        fixed64(b, 8, r.end_ns.max(r.start_ns));
        match &r.body {
            Body::Server(h) => server_attributes(b, h),
            Body::Internal { attributes, .. } | Body::Client { attributes, .. } => {
                for (k, v) in attributes {
                    attr(b, 9, k, v);
                }
            }
        }
        for e in &r.events.list {
            event(b, e);
        }
        uint(b, 12, r.events.dropped.into());
        message(b, 15, |b| {
            if let Some(m) = &r.error {
                bytes(b, 2, m.as_bytes());
                uint(b, 3, STATUS_ERROR);
            }
        });
        // W3C trace flags (sampled); bit 8: whether the parent is remote
        // is known (bit 9), as OTLP 1.x defines them.
        let remote = matches!(r.body, Body::Server(_)) && r.parent.is_some();
        fixed32(b, 16, 0x01 | 0x100 | if remote { 0x200 } else { 0 });
    });
}

/// An `ExportTraceServiceRequest` being built: one `ResourceSpans` of the
/// process's resource, one `ScopeSpans` of telltale's scope, and the
/// spans added so far.
pub struct Batch {
    /// `ResourceSpans.resource` (field 1), encoded once.
    resource: Vec<u8>,
    /// `ScopeSpans.scope` (field 1), encoded once.
    scope: Vec<u8>,
    /// The spans, each a `ScopeSpans.spans` field (2).
    spans: Vec<u8>,
    len: usize,
}

impl Batch {
    /// `resource` and `scope`: the encoded `Resource` and
    /// `InstrumentationScope` messages (without a field key).
    pub fn new(resource: &[u8], scope: &[u8]) -> Batch {
        let mut r = Vec::new();
        bytes_always(&mut r, 1, resource);
        let mut s = Vec::new();
        bytes_always(&mut s, 1, scope);
        Batch {
            resource: r,
            scope: s,
            spans: Vec::new(),
            len: 0,
        }
    }

    pub fn push(&mut self, r: &SpanRecord) {
        span(&mut self.spans, 2, r);
        self.len += 1;
    }

    /// How many spans it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The request's bytes; the batch is empty again (and keeps its
    /// buffer).
    pub fn take(&mut self) -> Vec<u8> {
        let scope_spans = self.scope.len() + self.spans.len();
        let resource_spans = self.resource.len() + 1 + varint_len(scope_spans as u64) + scope_spans;
        let total = 1 + varint_len(resource_spans as u64) + resource_spans;
        let mut out = Vec::with_capacity(total);
        key(&mut out, 1, LEN);
        varint(&mut out, resource_spans as u64);
        out.extend_from_slice(&self.resource);
        key(&mut out, 2, LEN);
        varint(&mut out, scope_spans as u64);
        out.extend_from_slice(&self.scope);
        out.extend_from_slice(&self.spans);
        self.spans.clear();
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::span::{Events, MAX_EVENTS};
    use super::super::{SpanId, TraceId};
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use prost::Message;

    fn server(method: Option<Method>, route: Option<&'static str>, status: u16) -> Http {
        Http {
            method,
            route,
            status,
            path: "/products/7".into(),
            scheme: "http",
            host: Some("shop:8001".into()),
            port: 9,
            user_agent: Some("curl/8".into()),
        }
    }

    fn records() -> Vec<SpanRecord> {
        let base = SpanRecord {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent: Some(SpanId([3; 8])),
            trace_state: Some("k=v".into()),
            start_ns: 10,
            end_ns: 20,
            body: Body::Server(server(Some(Method::GET), Some("/products/{id}"), 200)),
            events: Events::default(),
            error: None,
        };
        let mut v = vec![base.clone()];
        let mut r = base.clone();
        let mut h = server(Some(Method::POST), None, 503);
        h.path = "/a/path/longer/than/what/a/text/holds/inline".into();
        h.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101".into());
        r.body = Body::Server(h);
        r.error = Some("HTTP 503".into());
        r.parent = None;
        r.trace_state = None;
        r.end_ns = 5; // before the start: the end is the start
        v.push(r);
        let mut r = base.clone();
        let mut h = server(Some(Method::from_bytes(b"BREW").unwrap()), None, 404);
        h.host = Some("[::1]".into());
        h.user_agent = None;
        h.path = "".into();
        r.body = Body::Server(h);
        v.push(r);
        let mut r = base.clone();
        let mut h = server(None, None, 431);
        h.host = Some(":80".into());
        h.path = "x".repeat(300).as_str().into();
        r.body = Body::Server(h);
        v.push(r);
        let mut r = base.clone();
        r.start_ns = 0;
        r.end_ns = 0;
        r.body = Body::Internal {
            name: "load",
            attributes: vec![
                ("s", Value::text("é".repeat(100).as_str())),
                ("i", Value::Int(-7)),
                ("z", Value::Int(0)),
                ("f", Value::F64(-0.0)),
                ("g", Value::F64(2.5)),
                ("t", Value::Bool(true)),
                ("n", Value::Bool(false)),
                ("e", Value::text("")),
            ],
        };
        for i in 0..MAX_EVENTS + 3 {
            r.events.push(SpanEvent {
                time_ns: i as u64,
                name: if i == 1 {
                    "".into()
                } else {
                    format!("event {i}").into()
                },
                attributes: vec![("k", Value::Int(i as i64)), ("b", Value::Bool(false))],
            });
        }
        r.error = Some("".into());
        v.push(r);
        let mut r = base.clone();
        r.body = Body::Internal {
            name: "",
            attributes: Vec::new(),
        };
        v.push(r);
        let mut r = base;
        r.body = Body::Client {
            name: "GET payments".into(),
            attributes: vec![
                ("http.request.method", Value::text("GET")),
                ("server.port", Value::Int(8002)),
            ],
        };
        r.error = Some("HTTP 502".into());
        v.push(r);
        v
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

    #[test]
    fn the_direct_encoding_is_prosts_byte_for_byte() {
        let resource = Resource {
            attributes: vec![
                string_kv("service.name", "shop"),
                string_kv("long", &"v".repeat(200)),
            ],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "telltale".into(),
            version: "0.1.0".into(),
            ..Default::default()
        };
        let mut batch = Batch::new(&resource.encode_to_vec(), &scope.encode_to_vec());
        for round in 0..2 {
            let records = records();
            for r in &records {
                batch.push(r);
            }
            assert_eq!(batch.len(), records.len());
            let ours = batch.take();
            assert!(batch.is_empty());
            let reference = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope.clone()),
                        spans: records.into_iter().map(SpanRecord::into_otlp).collect(),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            };
            assert_eq!(
                ExportTraceServiceRequest::decode(ours.as_slice()).unwrap(),
                reference,
                "round {round}"
            );
            assert_eq!(ours, reference.encode_to_vec(), "round {round}");
        }
    }

    #[test]
    fn big_batches_get_long_lengths() {
        let mut batch = Batch::new(&[], &[]);
        let r = &records()[0];
        for _ in 0..1000 {
            batch.push(r);
        }
        let got = ExportTraceServiceRequest::decode(batch.take().as_slice()).unwrap();
        assert_eq!(got.resource_spans[0].scope_spans[0].spans.len(), 1000);
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }
}
