//! The request an event belongs to. The HTTP middleware runs each request
//! inside [`scope`]; the log layer adds the request's fields (`request_id`,
//! `method`, `path`) to every event logged meanwhile: the handler's own lines
//! and the request line.
//!
//! A tokio task-local rather than a tracing span: the same context for a
//! fraction of the cost. `bench/run` measured the per-request span at about
//! 40 % of logging's cost (registry slot, field visiting, enter and exit on
//! every poll, close); this is one move in and out of a task-local, and the
//! fields are rendered only when a line is written.

use poem::http::{HeaderValue, Method};
use std::future::Future;
use tracing::level_filters::LevelFilter;

/// The logged fields of one request.
pub struct RequestFields {
    pub request_id: HeaderValue,
    pub method: Method,
    /// The raw path, already cut to a loggable length.
    pub path: String,
}

tokio::task_local! {
    static CURRENT: Option<RequestFields>;
}

/// Whether any line can be written (else the middleware skips the context).
pub fn wanted() -> bool {
    LevelFilter::current() != LevelFilter::OFF
}

/// Runs `f` with `fields` as the current request; gives them back after.
pub async fn scope<F: Future>(
    fields: Option<RequestFields>,
    f: F,
) -> (F::Output, Option<RequestFields>) {
    let mut fut = std::pin::pin!(CURRENT.scope(fields, f));
    let out = fut.as_mut().await;
    (out, fut.as_mut().take_value().flatten())
}

/// Runs `f` with `fields` as the current request (for the request line).
pub fn sync_scope<R>(fields: Option<RequestFields>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(fields, f)
}

/// Calls `f` with the current request, if any.
pub(super) fn with_current(f: impl FnOnce(&RequestFields)) {
    let _ = CURRENT.try_with(|c| {
        if let Some(c) = c {
            f(c)
        }
    });
}
