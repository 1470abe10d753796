//! The request an event belongs to. The HTTP middleware runs each request
//! inside [`scoped`]; the log layer adds the request's fields (`request_id`,
//! `method`, `path`) to every event logged meanwhile (the handler's own
//! lines), and the middleware takes them back for the request line
//! ([`RequestScope::into_fields`]). The router records in the same place which
//! route template answered ([`set_route`]), for the middleware's metrics and
//! request line.
//!
//! A tokio task-local rather than a tracing span: the same context for a
//! fraction of the cost. A span takes a registry slot, field visiting, an
//! enter and exit on every poll, and a close; this is one move in and out of
//! a task-local, and the fields are rendered only when a line is written
//! (bench/NOTES.md, "What profiling found", item 3). The route is kept here
//! too, not as a tag in the response's extensions, which would cost two
//! allocations per request (the extensions map and its table; "Second
//! round", item 6).

use crate::traces::span::{Events, SpanEvent};
use crate::traces::SpanContext;
use arrayvec::ArrayString;
use poem::http::{HeaderValue, Method};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use tokio::task::futures::TaskLocalFuture;
use tracing::level_filters::LevelFilter;

/// Longest method logged (longer ones are cut: `http` accepts any token).
pub const MAX_LOGGED_METHOD: usize = 32;

/// Longest raw path written to a log line (the rest is cut).
const MAX_LOGGED_PATH: usize = 512;
/// Paths up to this length are kept without an allocation.
const INLINE_PATH: usize = 80;
/// Request ids up to this length (generated ones have 32 characters, UUIDs
/// 36) are kept without an allocation.
const INLINE_ID: usize = 48;

/// Longest incoming `x-request-id` that is kept.
const MAX_ID: usize = 128;

/// A request id: 1 to [`MAX_ID`] characters of `[A-Za-z0-9-_.:/+=]`. None of
/// them needs an escape in a JSON string or quotes in a console value, so
/// the log layer writes an id as it is (no scan per line).
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// An incoming id, if it is short and plain (else the caller makes one).
    pub fn from_header(v: &HeaderValue) -> Option<Self> {
        let b = v.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_ID
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"-_.:/+=".contains(&c));
        ok.then(|| RequestId(v.clone()))
    }

    /// 32 hex digits: 128 bits from the per-thread sequence trace ids come
    /// from (`traces::ids::next`). Not a secret: ids only correlate lines. It replaced two keyed SipHash rounds (callgrind: 581 → about
    /// 470 instructions per generated id; the rest is the hex digits and the
    /// header value).
    pub fn generate() -> Self {
        let hex = crate::traces::TraceId::random().hex();
        // Owned by a reference count from the start, so that a clone (a
        // typed handler's context) is one atomic add, not a second
        // allocation that a plain `Vec` would be promoted into.
        let shared = bytes::Bytes::from_owner(hex.into_bytes());
        RequestId(HeaderValue::from_maybe_shared(shared).expect("hex is a valid header value"))
    }

    /// The id (plain ASCII, see the type).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value, for the response.
    pub fn into_header(self) -> HeaderValue {
        self.0
    }
}

/// The logged fields of one request, copied out of the request so that
/// they share nothing with it: a request line carries them to the log writer
/// thread, and an allocation freed on another thread than the one that made
/// it costs both threads (the allocator's per-thread caches stop working).
#[derive(Clone)]
pub struct RequestFields {
    request_id: InlineStr<INLINE_ID>,
    /// Only token characters (RFC 9110 `tchar`, which `http` enforces), so,
    /// like the id, it is written without an escape scan.
    pub method: Method,
    path: InlineStr<INLINE_PATH>,
}

/// A string kept inline when it has at most `N` bytes. `ArrayString` rather
/// than a byte array: reading it back needs no UTF-8 check (the log writer
/// reads every request's id and path, twice for the path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InlineStr<const N: usize> {
    Inline(ArrayString<N>),
    Heap(Box<str>),
}

impl<const N: usize> InlineStr<N> {
    /// `s`, inline when it fits.
    pub fn new(s: &str) -> Self {
        match ArrayString::from(s) {
            Ok(inline) => InlineStr::Inline(inline),
            Err(_) => InlineStr::Heap(s.into()),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            InlineStr::Inline(s) => s,
            InlineStr::Heap(s) => s,
        }
    }
}

impl RequestFields {
    pub fn new(request_id: &RequestId, method: Method, path: &str) -> Self {
        let mut end = path.len().min(MAX_LOGGED_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        // A method is a token of any length: a long one is logged cut, and
        // stays a token (any prefix of one is).
        let method = if method.as_str().len() > MAX_LOGGED_METHOD {
            Method::from_bytes(&method.as_str().as_bytes()[..MAX_LOGGED_METHOD]).unwrap_or(method)
        } else {
            method
        };
        RequestFields {
            request_id: InlineStr::new(request_id.as_str()),
            method,
            path: InlineStr::new(&path[..end]),
        }
    }

    /// The request id (plain ASCII, see [`RequestId`]).
    pub fn request_id(&self) -> &str {
        self.request_id.as_str()
    }

    /// The raw path, cut to a loggable length on a char boundary.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }
}

/// A scheme name or a principal: inline up to 64 bytes, so that a caller
/// is copied, never shared between threads through a reference count (a
/// count that two cores and the log writer touch on every request; see
/// bench/NOTES.md, "Callers: API-key cost").
pub type Name = InlineStr<64>;

/// Who made the request, as a guard established it (`server::auth`).
/// A key's caller is plain bytes (no claims, no scopes): cheap to copy.
#[derive(Debug, Clone)]
pub struct Caller {
    scheme: Name,
    principal: Name,
    scopes: Vec<String>,
    claims: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl Caller {
    /// A caller: the accepting scheme's name, the principal, a JWT's
    /// scopes and claims.
    pub fn new(
        scheme: Name,
        principal: Name,
        scopes: Vec<String>,
        claims: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
    ) -> Caller {
        Caller {
            scheme,
            principal,
            scopes,
            claims,
        }
    }
    /// The key's principal (`key:principal`), or the JWT's `sub`.
    pub fn principal(&self) -> &str {
        self.principal.as_str()
    }
    /// The name of the scheme that accepted the credential.
    pub fn scheme(&self) -> &str {
        self.scheme.as_str()
    }
    /// A JWT's scopes (`scope` or `scp`); none for keys.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    /// A JWT claim; `None` for keys.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.as_ref()?.get(name)
    }
}

/// One request's context: its id, its log fields (none when logging is
/// off), the route that answered it (none if no route matched) and its
/// authenticated caller.
pub struct RequestScope {
    id: Option<RequestId>,
    fields: Option<RequestFields>,
    route: Cell<Option<usize>>,
    /// The route's template, once known: handlers' log lines carry it.
    template: Cell<Option<&'static str>>,
    /// The caller, once a guard established it (boxed: this context lives
    /// in every request's future, which poem copies into a box).
    pub(super) caller: std::cell::OnceCell<Box<Caller>>,
    /// The request's span, when tracing is on.
    span: Option<SpanContext>,
    /// What was logged in the request outside a child span, when its span
    /// is sampled: the server span's events.
    events: std::cell::RefCell<Option<Box<Events>>>,
}

impl RequestScope {
    pub fn new(fields: Option<RequestFields>) -> Self {
        RequestScope {
            id: None,
            fields,
            route: Cell::new(None),
            template: Cell::new(None),
            caller: std::cell::OnceCell::new(),
            span: None,
            events: std::cell::RefCell::default(),
        }
    }

    /// The server span's events (see [`push_event`]).
    pub fn take_events(&mut self) -> Events {
        self.events.get_mut().take().map(|e| *e).unwrap_or_default()
    }

    /// This context, in the trace of `span`: the request's log lines carry
    /// its ids, and [`current_span`] gives it.
    pub fn in_span(mut self, span: SpanContext) -> Self {
        self.span = Some(span);
        self
    }

    /// The span given to [`RequestScope::in_span`].
    pub fn span(&self) -> Option<SpanContext> {
        self.span
    }

    /// A context that also holds the request's id (see [`current_id`]).
    pub fn with_id(id: RequestId, fields: Option<RequestFields>) -> Self {
        RequestScope {
            id: Some(id),
            ..RequestScope::new(fields)
        }
    }

    /// The request id given to [`RequestScope::with_id`].
    pub fn take_id(&mut self) -> Option<RequestId> {
        self.id.take()
    }

    /// The principal of the caller recorded by [`set_caller`].
    pub fn caller(&self) -> Option<Name> {
        self.caller.get().map(|c| c.principal.clone())
    }

    /// The route tag [`set_route`] recorded, if any.
    pub fn route(&self) -> Option<usize> {
        self.route.get()
    }

    /// The request's log fields (none when logging is off).
    pub fn into_fields(self) -> Option<RequestFields> {
        self.fields
    }
}

tokio::task_local! {
    static CURRENT: RequestScope;
}

/// Whether any line can be written (else the middleware skips the fields).
pub fn wanted() -> bool {
    LevelFilter::current() != LevelFilter::OFF
}

/// `f` with `ctx` as the current request. Await it pinned in place, then
/// [`take_back`] the context.
///
/// A plain function, not an `async fn` that awaits `f` and returns the
/// context: such a wrapper keeps its arguments (the whole inner future) and
/// the task-local future that holds them again, so the request's future
/// doubled in size, and poem copies that future into its box on every
/// request.
pub fn scoped<F: Future>(ctx: RequestScope, f: F) -> TaskLocalFuture<RequestScope, F> {
    CURRENT.scope(ctx, f)
}

/// The context given to [`scoped`], once its future has completed.
pub fn take_back<F: Future>(fut: Pin<&mut TaskLocalFuture<RequestScope, F>>) -> RequestScope {
    fut.take_value().unwrap_or_else(|| RequestScope::new(None))
}

/// Runs `f` with `ctx` as the current request.
#[cfg(test)]
pub fn sync_scope<R>(ctx: RequestScope, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(ctx, f)
}

/// Records which route template answered the current request (called by the
/// router; a no-op outside a request).
pub fn set_route(tag: usize) {
    let _ = CURRENT.try_with(|c| c.route.set(Some(tag)));
}

/// Records the route tag and its template before the handler runs, so that
/// the handler's own log lines carry `route` (a no-op outside a request).
pub fn set_route_template(tag: usize, template: &'static str) {
    let _ = CURRENT.try_with(|c| {
        c.route.set(Some(tag));
        c.template.set(Some(template));
    });
}

/// Whether request lines carry `caller` (`logging.fields` lists it).
static CALLER_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets whether request lines carry the caller (by the installed logger).
pub(super) fn log_caller(on: bool) {
    CALLER_LOGGED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether request lines carry the caller: opt-in, since every byte a line
/// carries costs each request (`bench/auth`).
pub fn caller_logged() -> bool {
    CALLER_LOGGED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Records the current request's authenticated caller, whose principal its
/// log lines then carry (a no-op outside a request).
pub fn set_caller(caller: Box<Caller>) {
    let _ = CURRENT.try_with(|c| {
        // Set once per request: a second caller is ignored.
        let _ = c.caller.set(caller);
    });
}

/// The current request's caller, if a guard admitted one (`None` outside a
/// request, or on an open route).
pub fn current_caller() -> Option<Caller> {
    CURRENT
        .try_with(|c| c.caller.get().map(|c| Caller::clone(c)))
        .ok()
        .flatten()
}

/// The current request's span (`None` outside a request, or when tracing
/// is off). Its `sampled` says whether it is exported: only a sampled span
/// may be an exemplar.
pub fn current_span() -> Option<SpanContext> {
    CURRENT.try_with(|c| c.span).ok().flatten()
}

/// The current request's id, caller and span (each `None` outside a
/// request), in one task-local access: a typed handler's context is built
/// from them per request.
pub fn current_parts() -> (Option<RequestId>, Option<Box<Caller>>, Option<SpanContext>) {
    CURRENT
        .try_with(|c| (c.id.clone(), c.caller.get().cloned(), c.span))
        .unwrap_or((None, None, None))
}

/// Adds `e` to the current request's server span (a no-op outside a
/// request or when its span is not sampled).
pub fn push_event(e: SpanEvent) {
    let _ = CURRENT.try_with(|c| {
        if c.span.is_some_and(|s| s.sampled) {
            if let Ok(mut events) = c.events.try_borrow_mut() {
                events.get_or_insert_with(Box::default).push(e);
            }
        }
    });
}

/// Calls `f` with the current request's fields, if any, its route
/// template once the router has found it, its caller once known (when
/// `logging.fields` lists `caller`) and its span (when tracing is on).
pub(super) fn with_current(
    f: impl FnOnce(&RequestFields, Option<&'static str>, Option<&str>, Option<SpanContext>),
) {
    let _ = CURRENT.try_with(|c| {
        if let Some(fields) = &c.fields {
            let caller = c.caller.get().filter(|_| caller_logged());
            f(
                fields,
                c.template.get(),
                caller.map(|p| p.principal.as_str()),
                c.span,
            )
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(path: &str) -> String {
        let id = RequestId::from_header(&HeaderValue::from_static("id")).unwrap();
        RequestFields::new(&id, Method::GET, path)
            .path()
            .to_string()
    }

    #[test]
    fn paths_are_kept_whole_up_to_the_limit_and_cut_on_a_char_boundary() {
        for len in [
            0,
            1,
            INLINE_PATH - 1,
            INLINE_PATH,
            INLINE_PATH + 1,
            MAX_LOGGED_PATH,
        ] {
            let p = "p".repeat(len);
            assert_eq!(path(&p), p);
        }
        assert_eq!(path(&"a".repeat(1000)), "a".repeat(MAX_LOGGED_PATH));
        let long = format!("/{}", "é".repeat(400));
        let cut = path(&long);
        assert!(cut.len() == MAX_LOGGED_PATH - 1 && long.starts_with(&cut));
        let short = "/é".repeat(INLINE_PATH / 3 - 1);
        assert_eq!(path(&short), short);
    }

    #[test]
    fn request_ids_of_every_allowed_length_are_logged_whole() {
        for len in [1, INLINE_ID - 1, INLINE_ID, INLINE_ID + 1, MAX_ID] {
            let id = "i".repeat(len);
            let rid = RequestId::from_header(&HeaderValue::from_str(&id).unwrap()).unwrap();
            let fields = RequestFields::new(&rid, Method::GET, "/");
            assert_eq!(fields.request_id(), id);
            assert_eq!(fields.clone().request_id(), id);
        }
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_distinct_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..1000)
                        .map(|_| RequestId::generate().as_str().to_string())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let ids: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(ids.len(), 4000);
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{id}"
            );
        }
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn incoming_ids_are_kept_only_when_short_and_plain() {
        let id = |s: &str| RequestId::from_header(&HeaderValue::from_str(s).unwrap());
        for ok in ["a", "trace-1:2/3+4=5_6.7", &"x".repeat(MAX_ID)] {
            assert_eq!(id(ok).map(|i| i.as_str().to_string()).as_deref(), Some(ok));
        }
        for bad in [
            "",
            "two words",
            "quote\"",
            "back\\slash",
            "é",
            &"x".repeat(MAX_ID + 1),
        ] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert!(RequestId::from_header(&v).is_none(), "{bad:?} was kept");
        }
    }

    async fn route_after(f: impl Future<Output = ()>) -> Option<usize> {
        let mut fut = std::pin::pin!(scoped(RequestScope::new(None), f));
        fut.as_mut().await;
        take_back(fut).route()
    }

    #[tokio::test]
    async fn the_route_set_inside_the_scope_comes_back() {
        assert_eq!(route_after(async { set_route(3) }).await, Some(3));
        assert_eq!(route_after(async {}).await, None);
        set_route(5); // outside a request: ignored, no panic
    }
}
