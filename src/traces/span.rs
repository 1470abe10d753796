//! What a finished span carries from the request thread to the exporter:
//! plain, owned values, cheap to build (the server span is a typed record
//! whose attributes the writer thread expands), turned into OTLP protobuf
//! messages only on the writer thread ([`SpanRecord::into_otlp`]).

#[cfg(any(test, feature = "internals"))]
use super::encode::{split_host, KNOWN_METHODS};
use super::{SpanId, TraceId};
use arrayvec::ArrayString;
#[cfg(any(test, feature = "internals"))]
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
#[cfg(any(test, feature = "internals"))]
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use poem::http::{HeaderValue, Method};

/// The most events one span keeps; later ones are counted as dropped.
pub const MAX_EVENTS: usize = 64;
/// The most attributes one span or event keeps from `tracing` fields.
pub const MAX_ATTRIBUTES: usize = 64;
/// The longest attribute value or event name kept (longer ones are cut on
/// a character boundary).
pub const MAX_VALUE: usize = 4096;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Box<str>),
    Int(i64),
    F64(f64),
    Bool(bool),
}

impl Value {
    /// `s`, cut to [`MAX_VALUE`] bytes on a character boundary.
    pub fn text(s: &str) -> Value {
        Value::Str(cut(s, MAX_VALUE).into())
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest text a [`Text`] holds without an allocation.
pub const INLINE: usize = 38;

/// A request's text (path, `Host`, `User-Agent`) in a server span: inline
/// when short, so that recording a span allocates nothing for it on the
/// request thread, and the writer thread, which drops the span, frees
/// nothing that thread allocated (every allocation made on one thread and
/// freed on another costs both: `bench/NOTES.md`, Traces).
#[derive(Clone, PartialEq, Eq)]
pub struct Text(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline(ArrayString<INLINE>),
    Heap(Box<str>),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(s) => s.as_str(),
            Repr::Heap(s) => s,
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(match ArrayString::from(s) {
            Ok(a) => Repr::Inline(a),
            Err(_) => Repr::Heap(s.into()),
        })
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A span event: something logged inside the span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub time_ns: u64,
    pub name: Box<str>,
    pub attributes: Vec<(&'static str, Value)>,
}

/// The events of one span, bounded by [`MAX_EVENTS`].
#[derive(Debug, Default, Clone)]
pub struct Events {
    pub list: Vec<SpanEvent>,
    pub dropped: u32,
}

impl Events {
    /// Keeps `e`, or counts it once the span holds [`MAX_EVENTS`].
    pub fn push(&mut self, e: SpanEvent) {
        if self.list.len() < MAX_EVENTS {
            self.list.push(e);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

/// A server span's request and response, as OpenTelemetry's HTTP semantic
/// conventions name them.
#[derive(Debug, Clone)]
pub struct Http {
    /// The method; `None` for one no route serves, refused before it was
    /// read whole (`_OTHER`, as the conventions name it).
    pub method: Option<Method>,
    /// The route template that answered (`http.route`); none when no route
    /// matched.
    pub route: Option<&'static str>,
    pub status: u16,
    /// `url.path`, cut to [`MAX_VALUE`].
    pub path: Text,
    pub scheme: &'static str,
    /// `server.address` and `server.port`: the `Host` the client asked
    /// for (cut to [`MAX_VALUE`]), else the listening socket's port.
    pub host: Option<Text>,
    pub port: u16,
    /// `user_agent.original`, cut to [`MAX_VALUE`].
    pub user_agent: Option<Text>,
}

/// What kind of span, with what it alone carries.
#[derive(Debug, Clone)]
pub enum Body {
    /// One request, as the server answered it (inline: a span crosses to
    /// the writer thread in one box, [`super::Tracer::submit`]).
    Server(Http),
    /// A handler's own `tracing` span: its name and fields.
    Internal {
        name: &'static str,
        attributes: Vec<(&'static str, Value)>,
    },
    /// A call to a dependency, as its client made it.
    Client {
        name: Box<str>,
        attributes: Vec<(&'static str, Value)>,
    },
}

/// A finished, sampled span.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    /// The incoming `tracestate`, passed on unchanged (a copy: a header
    /// value would keep the connection's whole read buffer alive until the
    /// span is exported).
    pub trace_state: Option<Box<str>>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub body: Body,
    pub events: Events,
    /// Status Error, with this description (`None`: status unset).
    pub error: Option<Box<str>>,
}

#[cfg(any(test, feature = "internals"))]
fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(any(test, feature = "internals"))]
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.to_string()))
}

#[cfg(any(test, feature = "internals"))]
fn attribute(key: &str, v: &Value) -> KeyValue {
    kv(
        key,
        match v {
            Value::Str(t) => any_value::Value::StringValue(t.to_string()),
            Value::Int(i) => any_value::Value::IntValue(*i),
            Value::F64(f) => any_value::Value::DoubleValue(*f),
            Value::Bool(b) => any_value::Value::BoolValue(*b),
        },
    )
}

/// The text of a header value, if it is visible ASCII, cut to
/// [`MAX_VALUE`].
pub fn header_text(v: &HeaderValue) -> Option<Text> {
    v.to_str().ok().map(|t| cut(t, MAX_VALUE).into())
}

impl SpanRecord {
    /// The OTLP message of this span. The exporter writes the same bytes
    /// without building it (`encode`, whose tests compare the two).
    #[cfg(any(test, feature = "internals"))]
    pub fn into_otlp(self) -> Span {
        let mut attributes = Vec::new();
        let (name, kind) = match &self.body {
            Body::Server(h) => {
                let original = h.method.as_ref().map(Method::as_str);
                let known = original.is_some_and(|m| KNOWN_METHODS.contains(&m));
                let method = original.filter(|_| known).unwrap_or("_OTHER");
                attributes.push(s("http.request.method", method));
                if let Some(m) = original.filter(|_| !known) {
                    attributes.push(s("http.request.method_original", cut(m, MAX_VALUE)));
                }
                if let Some(route) = h.route {
                    attributes.push(s("http.route", route));
                }
                attributes.push(kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(h.status.into()),
                ));
                if !h.path.is_empty() {
                    attributes.push(s("url.path", &h.path));
                }
                attributes.push(s("url.scheme", h.scheme));
                let host = h.host.as_deref().map(split_host);
                if let Some((name, _)) = host.filter(|(n, _)| !n.is_empty()) {
                    attributes.push(s("server.address", name));
                }
                let port = host.and_then(|(_, p)| p).unwrap_or(h.port);
                attributes.push(kv("server.port", any_value::Value::IntValue(port.into())));
                if let Some(ua) = h.user_agent.as_deref() {
                    attributes.push(s("user_agent.original", ua));
                }
                if h.status >= 500 {
                    attributes.push(s("error.type", &h.status.to_string()));
                }
                let prefix = if known { method } else { "HTTP" };
                let name = match h.route {
                    Some(route) => format!("{prefix} {route}"),
                    None => prefix.to_string(),
                };
                (name, span::SpanKind::Server)
            }
            Body::Internal {
                name,
                attributes: own,
            } => {
                attributes.extend(own.iter().map(|(k, v)| attribute(k, v)));
                (name.to_string(), span::SpanKind::Internal)
            }
            Body::Client {
                name,
                attributes: own,
            } => {
                attributes.extend(own.iter().map(|(k, v)| attribute(k, v)));
                (name.to_string(), span::SpanKind::Client)
            }
        };
        let events = self
            .events
            .list
            .into_iter()
            .map(|e| span::Event {
                time_unix_nano: e.time_ns,
                name: e.name.into(),
                attributes: e.attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
                dropped_attributes_count: 0,
            })
            .collect();
        Span {
            trace_id: self.trace_id.0.to_vec(),
            span_id: self.span_id.0.to_vec(),
            trace_state: self.trace_state.as_deref().unwrap_or_default().to_string(),
            parent_span_id: self.parent.map(|p| p.0.to_vec()).unwrap_or_default(),
            // W3C trace flags (sampled); bit 8: whether the parent is
            // remote is known (bit 9), as OTLP 1.x defines them.
            flags: 0x01
                | 0x100
                | if matches!(self.body, Body::Server(_)) && self.parent.is_some() {
                    0x200
                } else {
                    0
                },
            name,
            kind: kind as i32,
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: self.end_ns.max(self.start_ns),
            attributes,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: self.events.dropped,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Some(match self.error {
                Some(message) => Status {
                    message: message.into(),
                    code: status::StatusCode::Error as i32,
                },
                None => Status::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_host("api:8080"), ("api", Some(8080)));
        assert_eq!(split_host("api"), ("api", None));
        assert_eq!(split_host("[::1]:9"), ("::1", Some(9)));
        assert_eq!(split_host("[::1]"), ("::1", None));
        assert_eq!(split_host("::1"), ("::1", None));
    }

    #[test]
    fn a_server_span_follows_the_http_conventions() {
        let r = SpanRecord {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent: Some(SpanId([3; 8])),
            trace_state: Some("k=v".into()),
            start_ns: 10,
            end_ns: 20,
            body: Body::Server(Http {
                method: Some(Method::GET),
                route: Some("/products/{id}"),
                status: 503,
                path: "/products/7".into(),
                scheme: "http",
                host: Some("shop:8001".into()),
                port: 9,
                user_agent: Some("curl/8".into()),
            }),
            events: Events::default(),
            error: Some("503".into()),
        };
        let span = r.into_otlp();
        assert_eq!(span.name, "GET /products/{id}");
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        assert_eq!(span.parent_span_id, vec![3; 8]);
        assert_eq!(span.trace_state, "k=v");
        let get = |k: &str| {
            span.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone()?.value)
        };
        assert_eq!(
            get("http.route"),
            Some(any_value::Value::StringValue("/products/{id}".into()))
        );
        assert_eq!(
            get("http.response.status_code"),
            Some(any_value::Value::IntValue(503))
        );
        assert_eq!(
            get("server.address"),
            Some(any_value::Value::StringValue("shop".into()))
        );
        assert_eq!(get("server.port"), Some(any_value::Value::IntValue(8001)));
        assert_eq!(
            get("error.type"),
            Some(any_value::Value::StringValue("503".into()))
        );
        assert_eq!(
            span.status.map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
    }
}
