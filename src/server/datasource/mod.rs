//! The Grafana JSON datasource behind the `grafana_json` endpoints.
//!
//! One implementation serves both dialects: the original SimpleJSON routes
//! (`/search`, `/query`, `/annotations`) and what `simpod-json-datasource`
//! 0.6+ speaks (`/metrics`, `/metric-payload-options`, `/variable`,
//! `/tag-keys`, `/tag-values`, `filters`, annotations through `/query`).
//!
//! ```text
//! manifest `datasource:` ─► model/datasource.rs (checked targets) ─► Live ◄─ sampler.rs (timer, reads the families)
//!                                                          │
//! HTTP body ─► protocol.rs (typed, 400 naming the field) ─► api.rs (answers)
//! ```
//!
//! [`Live`] holds the only state: a bounded ring of samples and a bounded
//! event store, so memory does not grow however long the server runs.

pub mod annotations;
pub mod api;
pub mod protocol;
pub mod ring;
pub mod sampler;

pub use crate::model::datasource as spec;
pub use spec::Spec;

use crate::manifest::EventKind;
use crate::model::Model;
use crate::server::families::Families;
use annotations::{AnnotationEvent, Store};
use ring::{Ring, Sample};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Unix milliseconds of `t`.
pub fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// The datasource's running state.
pub struct Live {
    pub spec: Spec,
    ring: Mutex<Ring>,
    events: Mutex<Store>,
}

/// A poisoned lock still holds consistent data here (every update is one push).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Live {
    pub fn new(spec: Spec) -> Self {
        Live {
            ring: Mutex::new(Ring::new(spec.retention)),
            events: Mutex::new(Store::new(spec.annotation_capacity)),
            spec,
        }
    }

    /// Takes over what `old` (the datasource before a reload) recorded: its
    /// events, and its samples when both sample the same series at the
    /// same interval (else the ring starts empty: old samples would land in
    /// the wrong series).
    pub fn carry_from(&self, old: &Live) {
        lock(&self.events).absorb(&lock(&old.events));
        let layout = |s: &Spec| {
            s.series()
                .map(|(t, d)| (t.name.clone(), d.metric.clone(), d.stat, d.slot))
                .collect::<Vec<_>>()
        };
        if self.spec.every == old.spec.every && layout(&self.spec) == layout(&old.spec) {
            lock(&self.ring).absorb(&lock(&old.ring));
        }
    }

    pub fn push_sample(&self, s: Sample) {
        lock(&self.ring).push(s);
    }

    /// Records the start-up event: called once the socket is bound, so a
    /// server that fails to bind never says it started.
    pub fn record_startup(&self, model: &Model, started_at: SystemTime) {
        let svc = &model.manifest.service;
        self.push_event(AnnotationEvent::new(
            EventKind::Startup,
            unix_ms(started_at),
            "Server started",
            format!(
                "{} {} started (commit {})",
                svc.name,
                svc.version,
                crate::model::COMMIT
            ),
        ));
    }

    pub fn push_event(&self, e: AnnotationEvent) {
        tracing::info!(target: "telltale::datasource", kind = e.kind.as_str(), "{}: {}", e.title, e.text);
        lock(&self.events).push(e);
    }

    /// Points of series `slot` in `[from, to]`.
    pub fn points(&self, slot: usize, from: i64, to: i64) -> Vec<(i64, f64)> {
        lock(&self.ring).points(slot, from, to)
    }

    /// Oldest and newest sample times.
    #[cfg(any(test, feature = "internals"))]
    pub fn span(&self) -> Option<(i64, i64)> {
        lock(&self.ring).span()
    }

    /// Samples held, and the most the ring holds.
    pub fn fill(&self) -> (usize, usize) {
        let r = lock(&self.ring);
        (r.len(), r.capacity())
    }

    pub fn events(&self, kinds: &[EventKind], from: i64, to: i64) -> Vec<AnnotationEvent> {
        lock(&self.events).select(kinds, from, to)
    }

    pub fn event_count(&self) -> usize {
        lock(&self.events).len()
    }
}

/// Builds the live datasource for `model` and returns the sampler to run on
/// the server's timer. At start-up (no `previous`) it records the
/// low-stock state; after a reload it carries over what `previous` recorded.
pub fn start(
    model: &Model,
    families: &Arc<Families>,
    started_at: SystemTime,
    previous: Option<&Live>,
) -> (Arc<Live>, crate::model::kinds::PeriodicTask) {
    let live = Arc::new(Live::new(model.datasource.clone()));
    match previous {
        Some(old) => live.carry_from(old),
        None => {
            let t = unix_ms(started_at);
            if let Some(e) = sampler::initial_low_stock(&live, families, t) {
                live.push_event(e);
            }
        }
    }
    let mut s = sampler::DatasourceSampler::new(live.clone(), families.clone());
    let timer = crate::model::kinds::PeriodicTask {
        every: live.spec.every,
        tick: Box::new(move || s.tick()),
    };
    (live, timer)
}
