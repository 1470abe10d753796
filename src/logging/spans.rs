//! A handler's own `tracing` spans and events, inside a sampled request,
//! become child spans and span events of the request's server span
//! (`traces`). Outside a sampled request, and with tracing off, this layer
//! does nothing but one check per span and event.

use crate::traces::span::{
    self, now_ns, Body, Events, SpanEvent, SpanRecord, Value, MAX_ATTRIBUTES,
};
use crate::traces::{SpanId, TraceId};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A child span in the making, kept in its `tracing` span's extensions.
pub(super) struct ChildSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    parent: SpanId,
    name: &'static str,
    start_ns: u64,
    /// When its code last stopped running (its last exit), 0 before.
    last_exit_ns: u64,
    attributes: Vec<(&'static str, Value)>,
    events: Events,
}

/// Fields as attributes (at most [`MAX_ATTRIBUTES`]); `message` is kept
/// apart (an event's name).
struct Fields<'a> {
    attributes: &'a mut Vec<(&'static str, Value)>,
    message: Option<String>,
}

impl Fields<'_> {
    fn put(&mut self, f: &Field, v: Value) {
        if f.name() == "message" {
            if let Value::Str(s) = v {
                self.message = Some(s.into());
            }
            return;
        }
        if let Some(slot) = self.attributes.iter_mut().find(|(k, _)| *k == f.name()) {
            slot.1 = v;
        } else if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push((f.name(), v));
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.put(f, Value::text(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.put(f, Value::Int(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        match i64::try_from(v) {
            Ok(i) => self.put(f, Value::Int(i)),
            Err(_) => self.put(f, Value::text(&v.to_string())),
        }
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.put(f, Value::F64(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.put(f, Value::Bool(v));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = std::fmt::write(&mut s, format_args!("{v:?}"));
        self.put(f, Value::text(&s));
    }
}

/// Where a span started now belongs: the innermost sampled child span of
/// the current `tracing` span, else the request's server span. `None`
/// outside a request or with tracing off.
pub fn current_parent() -> Option<crate::traces::SpanContext> {
    crate::traces::tracer()?;
    let child = tracing::dispatcher::get_default(|d| {
        use tracing::Subscriber as _;
        let reg = d.downcast_ref::<tracing_subscriber::Registry>()?;
        let current = reg.current_span();
        let span = reg.span(current.id()?)?;
        span.scope().find_map(|s| {
            s.extensions()
                .get::<ChildSpan>()
                .map(|c| (c.trace_id, c.span_id))
        })
    });
    match child {
        Some((trace_id, span_id)) => Some(crate::traces::SpanContext {
            trace_id,
            span_id,
            parent: None,
            sampled: true,
        }),
        None => super::request::current_span(),
    }
}

/// The layer (installed with the logger when tracing is on).
pub struct SpanLayer;

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if crate::traces::tracer().is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        // The parent: the nearest enclosing child span, else the request's
        // server span if it is sampled.
        let enclosing = span.scope().skip(1).find_map(|s| {
            s.extensions()
                .get::<ChildSpan>()
                .map(|c| (c.trace_id, c.span_id))
        });
        let parent = enclosing.or_else(|| {
            super::request::current_span()
                .filter(|s| s.sampled)
                .map(|s| (s.trace_id, s.span_id))
        });
        let Some((trace_id, parent)) = parent else {
            return;
        };
        let mut attributes = Vec::new();
        attrs.record(&mut Fields {
            attributes: &mut attributes,
            message: None,
        });
        span.extensions_mut().insert(ChildSpan {
            trace_id,
            span_id: SpanId::random(),
            parent,
            name: attrs.metadata().name(),
            start_ns: now_ns(),
            last_exit_ns: 0,
            attributes,
            events: Events::default(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if crate::traces::tracer().is_none() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            if let Some(c) = span.extensions_mut().get_mut::<ChildSpan>() {
                values.record(&mut Fields {
                    attributes: &mut c.attributes,
                    message: None,
                });
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if crate::traces::tracer().is_none() {
            return;
        }
        let in_child = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find(|s| s.extensions().get::<ChildSpan>().is_some())
        });
        if in_child.is_none() && !super::request::current_span().is_some_and(|s| s.sampled) {
            return;
        }
        let mut attributes = Vec::new();
        let mut fields = Fields {
            attributes: &mut attributes,
            message: None,
        };
        event.record(&mut fields);
        let meta = event.metadata();
        let name = fields
            .message
            .take()
            .unwrap_or_else(|| meta.name().to_string());
        attributes.push(("level", Value::Str(meta.level().as_str().into())));
        attributes.push(("logger", Value::text(meta.target())));
        let e = SpanEvent {
            time_ns: now_ns(),
            name: span::cut(&name, span::MAX_VALUE).into(),
            attributes,
        };
        match in_child {
            Some(s) => {
                if let Some(c) = s.extensions_mut().get_mut::<ChildSpan>() {
                    c.events.push(e);
                }
            }
            None => super::request::push_event(e),
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if crate::traces::tracer().is_none() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            if let Some(c) = span.extensions_mut().get_mut::<ChildSpan>() {
                c.last_exit_ns = now_ns();
            }
        }
    }

    /// The span ends where its code last ran (its last exit), not where
    /// its last handle happened to be dropped: a clone of the current span
    /// kept by a background task must not stretch it past its parent's
    /// end (`tests/child_spans.rs`). A span never entered ends when it
    /// closes.
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if crate::traces::tracer().is_none() {
            return;
        }
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(c) = span.extensions_mut().remove::<ChildSpan>() else {
            return;
        };
        if let Some(t) = crate::traces::tracer() {
            t.submit(SpanRecord {
                trace_id: c.trace_id,
                span_id: c.span_id,
                parent: Some(c.parent),
                trace_state: None,
                start_ns: c.start_ns,
                end_ns: match c.last_exit_ns {
                    0 => now_ns(),
                    t => t,
                }
                .max(c.start_ns),
                body: Body::Internal {
                    name: c.name,
                    attributes: c.attributes,
                },
                events: c.events,
                error: None,
            });
        }
    }
}
