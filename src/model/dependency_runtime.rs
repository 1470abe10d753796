//! What a started dependency is made of at run time: the dependency
//! families (`telltale_dependency_*`), each dependency's telemetry handles
//! and health, and [`Running`], the set the server starts, checks and
//! collects (see [`super::dependencies`]).

use super::dependencies::*;
use crate::manifest::dependencies::Dependency;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec};
use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every dependency family, each labelled by `dependency`.
#[derive(Clone)]
pub struct DependencyFamilies {
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    up: IntGaugeVec,
    pool_size: IntGaugeVec,
    pool_idle: IntGaugeVec,
    pool_waiting: IntGaugeVec,
    retries: IntCounterVec,
}

impl DependencyFamilies {
    fn new() -> prometheus::Result<DependencyFamilies> {
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(prometheus::Opts::new(name, help), &["dependency"])
        };
        Ok(DependencyFamilies {
            duration: HistogramVec::new(
                HistogramOpts::new(
                    FAMILIES[0],
                    "Calls to a dependency by operation and outcome (ok, error, timeout, refused), in seconds.",
                )
                .buckets(BUCKETS.to_vec()),
                &["dependency", "operation", "outcome"],
            )?,
            in_flight: gauge(FAMILIES[1], "Calls to a dependency under way.")?,
            up: gauge(
                FAMILIES[2],
                "1 while a dependency's background health check passes, 0 while it fails.",
            )?,
            pool_size: gauge(FAMILIES[3], "Connections a dependency's pool holds open.")?,
            pool_idle: gauge(FAMILIES[4], "Open connections of a dependency's pool not in use.")?,
            pool_waiting: gauge(
                FAMILIES[5],
                "Calls waiting for a connection of a dependency's pool.",
            )?,
            retries: IntCounterVec::new(
                prometheus::Opts::new(
                    FAMILIES[6],
                    "Attempts a dependency client sent again (within its retry budget).",
                ),
                &["dependency"],
            )?,
        })
    }
}

/// One dependency's metric handles, resolved once at start: a call only
/// touches atomics.
#[derive(Clone)]
pub struct Telemetry {
    /// `[operation][outcome]`, in the order of
    /// [`PreparedDependency::operations`] and [`Outcome::ALL`].
    duration: Arc<Vec<[Histogram; 4]>>,
    operations: Arc<Vec<String>>,
    /// Calls under way.
    pub in_flight: IntGauge,
    /// Calls waiting for a pooled connection.
    pub waiting: IntGauge,
    retries: prometheus::IntCounter,
}

impl Telemetry {
    /// The index of `operation` in the declared set.
    pub fn operation(&self, name: &str) -> Option<usize> {
        self.operations.iter().position(|o| o == name)
    }
    /// Records one call of operation `op` (an index from
    /// [`Telemetry::operation`]).
    pub fn observe(&self, op: usize, outcome: Outcome, took: Duration) {
        if let Some(h) = self.duration.get(op) {
            let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(1);
            h[i].observe(took.as_secs_f64());
        }
    }
    /// Counts one attempt sent again.
    pub fn retried(&self) {
        self.retries.inc();
    }
}

/// One started dependency.
pub struct Entry {
    pub name: String,
    pub kind: String,
    #[cfg_attr(
        not(any(test, feature = "internals")),
        expect(dead_code, reason = "read by tests only")
    )]
    pub system: &'static str,
    pub required: bool,
    pub client: Arc<dyn Any + Send + Sync>,
    client_type: (TypeId, &'static str),
    up: AtomicBool,
    /// No health check has finished yet.
    unchecked: AtomicBool,
    up_gauge: IntGauge,
    /// The pool's reader, with its size and idle gauges.
    pool: Option<(PoolReader, IntGauge, IntGauge)>,
}

impl Entry {
    /// Whether its last health check passed.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
    /// Records a health check's result; returns whether the state changed.
    pub fn set_up(&self, up: bool) -> bool {
        self.up_gauge.set(i64::from(up));
        self.up.swap(up, Ordering::AcqRel) != up
    }
    /// Whether the check that just finished was its first (true once).
    pub fn first_check(&self) -> bool {
        self.unchecked.swap(false, Ordering::AcqRel)
    }
}

/// The started dependencies of a server: a start hook resource
/// (`Resources::get::<Running>()`), which `Setup` hands clients out of,
/// `/ready` reads and `/metrics` exposes.
pub struct Running {
    entries: Vec<Entry>,
    families: DependencyFamilies,
}

/// What a dependency kind is started with, by name.
pub struct ToStart<'a> {
    pub dependency: &'a Dependency,
    pub prepared: &'a Arc<dyn PreparedDependency>,
    pub target: Option<String>,
}

/// A started dependency's health check, to run in the background.
pub struct Checker {
    pub index: usize,
    pub every: Duration,
    pub timeout: Duration,
    pub check: HealthCheck,
}

impl Running {
    /// Starts each dependency: its metric handles, its client. Returns the
    /// running set, each one's health check and the start-up line's words.
    pub fn start(
        list: Vec<ToStart<'_>>,
        base_dir: Option<&std::path::Path>,
    ) -> Result<(Running, Vec<Checker>, Vec<String>), String> {
        let families = DependencyFamilies::new()
            .map_err(|e| format!("cannot make the dependency metrics: {e}"))?;
        let mut entries = Vec::new();
        let mut checkers = Vec::new();
        let mut shown = Vec::new();
        for (index, t) in list.into_iter().enumerate() {
            let d = t.dependency;
            let name = d.name.as_str();
            let operations = t.prepared.operations();
            let duration = operations
                .iter()
                .map(|op| {
                    Outcome::ALL
                        .map(|o| families.duration.with_label_values(&[name, op, o.as_str()]))
                })
                .collect();
            let telemetry = Telemetry {
                duration: Arc::new(duration),
                operations: Arc::new(operations),
                in_flight: families.in_flight.with_label_values(&[name]),
                waiting: families.pool_waiting.with_label_values(&[name]),
                retries: families.retries.with_label_values(&[name]),
            };
            let started = t
                .prepared
                .start(StartCtx {
                    dependency: d,
                    target: t.target,
                    telemetry,
                    base_dir,
                })
                .map_err(|e| format!("dependency {name}: {e}"))?;
            let pool = started.pool.map(|p| {
                (
                    p,
                    families.pool_size.with_label_values(&[name]),
                    families.pool_idle.with_label_values(&[name]),
                )
            });
            shown.push(format!(
                "{name} ({}: {})",
                t.prepared.system(),
                started.shown
            ));
            checkers.push(Checker {
                index,
                every: d.check_every.get(),
                timeout: d.timeout.get(),
                check: started.check,
            });
            entries.push(Entry {
                name: d.name.clone(),
                kind: d.kind.clone(),
                system: t.prepared.system(),
                required: d.required,
                client: started.client,
                client_type: t.prepared.client_type(),
                up: AtomicBool::new(false),
                unchecked: AtomicBool::new(true),
                up_gauge: families.up.with_label_values(&[name]),
                pool,
            });
        }
        Ok((Running { entries, families }, checkers, shown))
    }

    /// Every started dependency, in manifest order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The required dependencies that are down.
    pub fn down(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.required && !e.is_up())
            .map(|e| e.name.as_str())
            .collect()
    }

    /// The client of dependency `name`, if it is of type `C`.
    pub fn client<C: Any + Send + Sync + Clone>(&self, name: &str) -> Result<C, String> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| format!("no dependency {name:?} was started"))?;
        e.client.downcast_ref::<C>().cloned().ok_or_else(|| {
            format!(
                "dependency {name:?} is of kind {}, whose client is a {}, not a {}",
                e.kind,
                e.client_type.1,
                client_type_name::<C>()
            )
        })
    }
}

impl Running {
    /// Every family, as collectors.
    fn collectors(&self) -> [&dyn Collector; 7] {
        let f = &self.families;
        [
            &f.duration,
            &f.in_flight,
            &f.up,
            &f.pool_size,
            &f.pool_idle,
            &f.pool_waiting,
            &f.retries,
        ]
    }
}

impl Collector for Running {
    fn desc(&self) -> Vec<&Desc> {
        self.collectors()
            .into_iter()
            .flat_map(|c| c.desc())
            .collect()
    }

    /// The pools' gauges read now, then every family.
    fn collect(&self) -> Vec<MetricFamily> {
        for e in &self.entries {
            if let Some((stats, size, idle)) = &e.pool {
                let s = stats();
                size.set(s.size.into());
                idle.set(s.idle.into());
            }
        }
        self.collectors()
            .into_iter()
            .flat_map(|c| c.collect())
            .collect()
    }
}
