//! What a handler may know of its request besides its typed input: the
//! headers, the request id, the incoming W3C trace context and the caller
//! that authentication established.

use super::auth::Caller;

/// The current request's caller, from inside the request (middleware, a
/// handler kind of its own): `None` on an open route or outside a request.
pub fn current_caller() -> Option<Caller> {
    crate::logging::request::current_caller()
}
use crate::logging::request::RequestId;
use poem::http::HeaderMap;
use poem::web::headers::{Header, HeaderMapExt};

/// One request's context (`Input::request`).
#[derive(Debug, Default)]
pub struct RequestContext {
    headers: HeaderMap,
    id: Option<RequestId>,
    caller: Option<Caller>,
    trace: Option<TraceContext>,
}

impl RequestContext {
    /// The context of a request with these headers, inside the request
    /// (the id and the caller come from where the server put them).
    pub fn new(headers: HeaderMap) -> RequestContext {
        let trace = TraceContext::from_headers(&headers);
        RequestContext {
            id: crate::logging::request::current_id(),
            headers,
            caller: crate::logging::request::current_caller(),
            trace,
        }
    }

    /// Every header of the request.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The header `name` as text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// A typed header (`poem::web::headers::UserAgent`, ...), `None` if
    /// absent or malformed.
    pub fn typed_header<H: Header>(&self) -> Option<H> {
        self.headers.typed_get::<H>()
    }

    /// The request id (`x-request-id`, the incoming one or a generated one),
    /// as the response header and every log line of the request carry it.
    pub fn request_id(&self) -> &str {
        self.id.as_ref().map_or("", RequestId::as_str)
    }

    /// Who called, when the endpoint requires authentication.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// The incoming W3C trace context (`traceparent`), if the caller sent a
    /// valid one.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }
}

/// A W3C Trace Context `traceparent`: the trace and the parent span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceContext {
    /// The `traceparent` of `headers`, if valid (version `00`, or a later
    /// version read as `00` as the spec asks; ids not all zero).
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        TraceContext::parse(headers.get("traceparent")?.to_str().ok()?)
    }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`.
    pub fn parse(s: &str) -> Option<TraceContext> {
        let s = s.trim();
        let mut parts = s.split('-');
        let version = parts.next()?;
        let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |p: &str| p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if version.len() != 2 || !lower_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !(lower_hex(trace) && lower_hex(parent) && lower_hex(flags)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        hex_into(trace, &mut trace_id)?;
        hex_into(parent, &mut parent_id)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The caller's span id (this request's parent), 16 hex digits.
    pub fn parent_id(&self) -> String {
        hex(&self.parent_id)
    }

    /// Whether the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

fn hex_into(s: &str, out: &mut [u8]) -> Option<()> {
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_parsed_as_the_spec_says() {
        let t =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id(), "00f067aa0ba902b7");
        assert!(t.sampled());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-xyz")
                .is_some_and(|t| !t.sampled())
        );
    }
}
