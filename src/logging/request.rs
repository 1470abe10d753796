//! The request an event belongs to. The HTTP middleware runs each request
//! inside [`scope`]; the log layer adds the request's fields (`request_id`,
//! `method`, `path`) to every event logged meanwhile: the handler's own lines
//! and the request line. The router records in the same place which route
//! template answered ([`set_route`]), for the middleware's metrics and
//! request line.
//!
//! A tokio task-local rather than a tracing span: the same context for a
//! fraction of the cost. `bench/run` measured the per-request span at about
//! 40 % of logging's cost (registry slot, field visiting, enter and exit on
//! every poll, close); this is one move in and out of a task-local, and the
//! fields are rendered only when a line is written. The route slot replaced
//! a tag in the response's extensions, which cost two allocations per
//! request (the extensions map and its table).

use poem::http::{HeaderValue, Method};
use std::cell::Cell;
use std::future::Future;
use tracing::level_filters::LevelFilter;

/// Longest raw path written to a log line (the rest is cut).
const MAX_LOGGED_PATH: usize = 512;
/// Paths up to this length are kept without an allocation.
const INLINE_PATH: usize = 80;

/// The logged fields of one request.
pub struct RequestFields {
    pub request_id: HeaderValue,
    pub method: Method,
    path: LoggedPath,
}

/// The raw path, cut to [`MAX_LOGGED_PATH`]; inline when short, because
/// copying a `String` (or cloning the request's `Uri`, whose bytes are not
/// shared yet) is an allocation per request.
enum LoggedPath {
    Inline { len: u8, buf: [u8; INLINE_PATH] },
    Heap(Box<str>),
}

impl RequestFields {
    pub fn new(request_id: HeaderValue, method: Method, path: &str) -> Self {
        let mut end = path.len().min(MAX_LOGGED_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        let path = &path[..end];
        let path = if path.len() <= INLINE_PATH {
            let mut buf = [0; INLINE_PATH];
            buf[..path.len()].copy_from_slice(path.as_bytes());
            LoggedPath::Inline {
                len: path.len() as u8,
                buf,
            }
        } else {
            LoggedPath::Heap(path.into())
        };
        RequestFields {
            request_id,
            method,
            path,
        }
    }

    /// The raw path, cut to a loggable length on a char boundary.
    pub fn path(&self) -> &str {
        match &self.path {
            // Whole chars of a `&str` were copied in `new`.
            LoggedPath::Inline { len, buf } => {
                std::str::from_utf8(&buf[..*len as usize]).unwrap_or_default()
            }
            LoggedPath::Heap(s) => s,
        }
    }
}

/// One request's context: its log fields (none when logging is off) and the
/// route that answered it (none if no route matched).
pub struct Context {
    fields: Option<RequestFields>,
    route: Cell<Option<usize>>,
}

impl Context {
    pub fn new(fields: Option<RequestFields>) -> Self {
        Context {
            fields,
            route: Cell::new(None),
        }
    }

    /// The route tag [`set_route`] recorded, if any.
    pub fn route(&self) -> Option<usize> {
        self.route.get()
    }
}

tokio::task_local! {
    static CURRENT: Context;
}

/// Whether any line can be written (else the middleware skips the fields).
pub fn wanted() -> bool {
    LevelFilter::current() != LevelFilter::OFF
}

/// Runs `f` with `ctx` as the current request; gives it back after.
pub async fn scope<F: Future>(ctx: Context, f: F) -> (F::Output, Context) {
    let mut fut = std::pin::pin!(CURRENT.scope(ctx, f));
    let out = fut.as_mut().await;
    let ctx = fut
        .as_mut()
        .take_value()
        .unwrap_or_else(|| Context::new(None));
    (out, ctx)
}

/// Runs `f` with `ctx` as the current request (for the request line).
pub fn sync_scope<R>(ctx: Context, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(ctx, f)
}

/// Records which route template answered the current request (called by the
/// router; a no-op outside a request).
pub fn set_route(tag: usize) {
    let _ = CURRENT.try_with(|c| c.route.set(Some(tag)));
}

/// Calls `f` with the current request's fields, if any.
pub(super) fn with_current(f: impl FnOnce(&RequestFields)) {
    let _ = CURRENT.try_with(|c| {
        if let Some(fields) = &c.fields {
            f(fields)
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(path: &str) -> String {
        RequestFields::new(HeaderValue::from_static("id"), Method::GET, path)
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

    #[tokio::test]
    async fn the_route_set_inside_the_scope_comes_back() {
        let (_, ctx) = scope(Context::new(None), async { set_route(3) }).await;
        assert_eq!(ctx.route(), Some(3));
        let (_, ctx) = scope(Context::new(None), async {}).await;
        assert_eq!(ctx.route(), None);
        set_route(5); // outside a request: ignored, no panic
    }
}
