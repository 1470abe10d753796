//! The families `/metrics` exposes: one small registry per declared metric
//! (a [`Unit`]) and one for telltale's own. A reload keeps the units whose
//! prepared source the new model carried over (their values with them),
//! installs the others afresh, and drops the units of removed metrics, so
//! that their series leave `/metrics` at the swap.

use crate::manifest::Metric;
use crate::model::kinds::{Installer, PeriodicTask, PreparedSource};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::sync::{Arc, Mutex};

/// Timer tasks: held until the server runs them, aborted when dropped.
#[derive(Default)]
pub struct Tasks {
    pending: Mutex<Vec<PeriodicTask>>,
    running: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Tasks {
    pub fn new(samplers: Vec<PeriodicTask>) -> Tasks {
        Tasks {
            pending: Mutex::new(samplers),
            running: Mutex::default(),
        }
    }

    /// Spawns the samplers not started yet on the current tokio runtime.
    pub fn start(&self) {
        let pending = std::mem::take(&mut *lock(&self.pending));
        let mut running = lock(&self.running);
        for mut s in pending {
            let task = tokio::spawn(async move {
                let mut t = tokio::time::interval(s.every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t.tick().await;
                loop {
                    t.tick().await;
                    (s.tick)();
                }
            });
            running.push(task.abort_handle());
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in lock(&self.running).drain(..) {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One declared metric, installed.
pub struct Unit {
    /// The prepared source it was installed from: a reload whose model
    /// holds this same source (see `model::reopen`) keeps the unit.
    pub source: Arc<dyn PreparedSource>,
    pub registry: Registry,
    pub http_requests: Option<(IntCounterVec, Vec<String>)>,
    pub http_duration: Option<(HistogramVec, Vec<String>)>,
    pub tasks: Tasks,
}

impl Unit {
    pub fn install(metric: &Metric, source: &Arc<dyn PreparedSource>) -> Result<Unit, String> {
        let registry = Registry::new();
        let mut inst = Installer {
            registry: &registry,
            http_requests: None,
            http_duration: None,
            samplers: Vec::new(),
        };
        source
            .install(metric, &mut inst)
            .map_err(|e| format!("cannot register metric {}: {e}", metric.name))?;
        let (http_requests, http_duration, samplers) =
            (inst.http_requests, inst.http_duration, inst.samplers);
        Ok(Unit {
            source: source.clone(),
            registry,
            http_requests,
            http_duration,
            tasks: Tasks::new(samplers),
        })
    }
}

/// Everything one generation exposes.
pub struct Families {
    /// telltale's own families (process, log writer, connections, reloads):
    /// one registry for the whole process.
    pub own: Registry,
    /// One per `metrics[i]`, same order.
    pub units: Vec<Arc<Unit>>,
    /// Each `metrics[i]`'s name and help as declared now: a unit kept by a
    /// reload that changed only the help serves the new text.
    pub help: Vec<(String, String)>,
}

impl Families {
    /// Every family, sorted by name (as `Registry::gather` sorts its own).
    pub fn gather(&self) -> Vec<MetricFamily> {
        let mut all = self.own.gather();
        for (i, u) in self.units.iter().enumerate() {
            let mut families = u.registry.gather();
            if let Some((name, help)) = self.help.get(i) {
                for f in families.iter_mut().filter(|f| f.name() == name) {
                    f.set_help(help.clone());
                }
            }
            all.extend(families);
        }
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Starts the timers of units not started yet.
    pub fn start(&self) {
        for u in &self.units {
            u.tasks.start();
        }
    }
}
