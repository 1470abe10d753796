//! Hot reload: SIGHUP, or with `serve --watch` a change to the manifest or
//! one of its data files, loads and validates the manifest again.
//!
//! - A manifest that fails validation changes nothing: the old one keeps
//!   serving, and every located error is logged.
//! - One that passes becomes a new [`ServedManifest`], swapped in with one atomic
//!   store. Each request loads the current app once, so requests in flight
//!   finish on the app they started on, and no request sees half of each.
//! - Families whose declaration is unchanged and that keep values (the HTTP
//!   families, `source: app`) are carried over with their values. Removed
//!   metrics leave `/metrics` at the swap; the series of removed routes
//!   once the old app has drained (no late request can add them back).
//! - The outcome is exposed as Prometheus names its own:
//!   `telltale_config_last_reload_successful`,
//!   `telltale_config_last_reload_success_timestamp_seconds`, and
//!   `telltale_config_reloads_total{result}`.

use super::{Process, ServedManifest};
use arc_swap::ArcSwap;
use poem::{Endpoint, Request, Response, Result};
use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How reloads are triggered, and the kinds a reloaded manifest may name.
pub struct Reload {
    pub registry: crate::model::KindRegistry,
    /// Also reload when the manifest or a data file changes on disk.
    pub watch: bool,
}

/// The app being served.
pub struct Current(ArcSwap<ServedManifest>);

impl Current {
    pub fn new(app: ServedManifest) -> Current {
        Current(ArcSwap::from_pointee(app))
    }
    pub fn load_full(&self) -> Arc<ServedManifest> {
        self.0.load_full()
    }
}

/// The server's endpoint: the current app, loaded once per request.
pub struct Served(pub Arc<Current>);

impl Endpoint for Served {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = Result<Response>> + Send {
        let app = self.0.load_full();
        async move { app.endpoint.call(req).await }
    }
}

/// The reload metrics (in the process's own registry).
pub struct ReloadStats {
    successful: IntGauge,
    success_time: Gauge,
    success: IntCounter,
    failure: IntCounter,
}

impl ReloadStats {
    /// Start-up counts as the first successful load, as in Prometheus.
    pub fn new(registry: &Registry, started_at: SystemTime) -> prometheus::Result<ReloadStats> {
        let successful = IntGauge::new(
            "telltale_config_last_reload_successful",
            "Whether the last manifest reload succeeded (1) or failed (0; the previous manifest is still served).",
        )?;
        let success_time = Gauge::new(
            "telltale_config_last_reload_success_timestamp_seconds",
            "When the manifest being served was loaded (start-up or the last successful reload), in Unix seconds.",
        )?;
        let total = IntCounterVec::new(
            Opts::new(
                "telltale_config_reloads_total",
                "Manifest reloads after start-up, by result (success, failure).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(successful.clone()))?;
        registry.register(Box::new(success_time.clone()))?;
        registry.register(Box::new(total.clone()))?;
        successful.set(1);
        success_time.set(unix_seconds(started_at));
        Ok(ReloadStats {
            successful,
            success_time,
            success: total.with_label_values(&["success"]),
            failure: total.with_label_values(&["failure"]),
        })
    }

    fn succeeded(&self) {
        self.successful.set(1);
        self.success_time.set(unix_seconds(SystemTime::now()));
        self.success.inc();
    }

    fn failed(&self) {
        self.successful.set(0);
        self.failure.inc();
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The routes a reload removed, for pruning the HTTP families.
pub struct Gone {
    /// Every `path` value still served (templates, docs, `unmatched`).
    keep: HashSet<String>,
    /// (template, method) pairs no longer declared.
    pairs: HashSet<(String, String)>,
}

impl Gone {
    pub fn new(before: &[(String, String)], after: &[(String, String)], keep: Vec<String>) -> Gone {
        let after: HashSet<&(String, String)> = after.iter().collect();
        Gone {
            keep: keep.into_iter().collect(),
            pairs: before
                .iter()
                .filter(|pair| !after.contains(pair))
                .cloned()
                .collect(),
        }
    }

    /// Removes from `vec` the series of removed routes: those under a
    /// template no longer served (whatever their method: 405s too), and
    /// those of a (template, method) pair no longer declared.
    pub fn prune<T: MetricVecBuilder>(&self, vec: &MetricVec<T>, labels: &[String]) {
        if !labels.iter().any(|l| l == "path") {
            return;
        }
        for family in vec.collect() {
            for m in family.get_metric() {
                let values: HashMap<&str, &str> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                let Some(&path) = values.get("path") else {
                    continue;
                };
                let method = values.get("method").copied();
                let gone = !self.keep.contains(path)
                    || method.is_some_and(|method| {
                        self.pairs.contains(&(path.to_string(), method.to_string()))
                    });
                if gone {
                    let _ = vec.remove(&values);
                }
            }
        }
    }
}

/// SIGHUP's handler: installed at once, so that from then on a SIGHUP never
/// ends the process (its default action); [`start`] acts on it.
#[cfg(unix)]
pub struct Hangup(tokio::signal::unix::Signal);
#[cfg(not(unix))]
pub struct Hangup;

#[cfg(unix)]
pub fn hangup() -> Result<Hangup, String> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map(Hangup)
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))
}

#[cfg(not(unix))]
pub fn hangup() -> Result<Hangup, String> {
    Ok(Hangup)
}

/// Starts the task that reloads on SIGHUP (and on file changes with
/// `watch`).
pub fn start(
    current: Arc<Current>,
    process: Arc<Process>,
    cfg: Reload,
    hangup: Hangup,
) -> Result<tokio::task::JoinHandle<()>, String> {
    #[cfg(unix)]
    let mut hup = hangup.0;
    #[cfg(not(unix))]
    let _ = hangup;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watch = if cfg.watch {
        let w = Watch::new(tx).map_err(|e| format!("cannot watch the manifest: {e}"))?;
        Some(w)
    } else {
        None
    };
    if let Some(w) = &mut watch {
        w.follow(&current.load_full().runtime.model.inputs());
    }
    Ok(tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            let hangup = hup.recv();
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let why = tokio::select! {
                Some(()) = hangup => "SIGHUP",
                Some(()) = rx.recv() => {
                    // An editor's save is several events: one reload for all.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while rx.try_recv().is_ok() {}
                    "a watched file changed"
                }
                else => return,
            };
            if let Some(inputs) = reload(&current, &process, &cfg.registry, why).await {
                if let Some(w) = &mut watch {
                    w.follow(&inputs);
                }
            }
        }
    }))
}

/// One reload; the new model's input files when it succeeded.
async fn reload(
    current: &Arc<Current>,
    process: &Arc<Process>,
    registry: &crate::model::KindRegistry,
    why: &'static str,
) -> Option<Vec<PathBuf>> {
    let old = current.load_full();
    let model = &old.runtime.model;
    if model.source.base_dir.is_none() {
        tracing::warn!(target: "telltale::reload", reason = why,
            "{why}: the manifest compiled into this binary cannot change; nothing reloaded");
        return None;
    }
    let path = PathBuf::from(&model.source.name);
    let started = Instant::now();
    let built = {
        let (old, process, registry) = (old.clone(), process.clone(), registry.clone());
        tokio::task::spawn_blocking(move || {
            let m = crate::model::reopen(&path, &registry, &old.runtime.model)
                .map_err(|d| d.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            super::assemble_after(Arc::new(m), process, Some(&old)).map_err(|e| vec![e])
        })
        .await
        .unwrap_or_else(|e| Err(vec![format!("the reload task failed: {e}")]))
    };
    match built {
        Ok(app) => {
            for (field, before, after) in restart_only(model, &app.runtime.model) {
                tracing::warn!(target: "telltale::reload", field,
                    "{field} changed ({before} → {after}); it takes effect at the next restart");
            }
            let kept = app
                .runtime
                .metrics
                .units
                .iter()
                .filter(|u| old.runtime.metrics.units.iter().any(|o| Arc::ptr_eq(o, u)))
                .count();
            let m = &app.runtime.model.manifest;
            let (endpoints, metrics) = (m.endpoints.len(), m.metrics.len());
            let inputs = app.runtime.model.inputs();
            let before = old.table.declared();
            app.touch();
            app.start();
            current.0.store(Arc::new(app));
            // Once no request runs on the old app (none can add a removed
            // route's series back), prune them.
            let gone = Arc::downgrade(&old);
            drop(old);
            let deadline = Instant::now() + Duration::from_secs(10);
            while gone.strong_count() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            current.load_full().prune(&before);
            process.reloads.succeeded();
            let ms = started.elapsed().as_secs_f64() * 1e3;
            tracing::info!(target: "telltale::reload", reason = why, took_ms = ms,
                "manifest reloaded ({why}) in {ms:.1} ms: {endpoints} endpoints, {metrics} metrics, {kept} families kept with their values");
            Some(inputs)
        }
        Err(errors) => {
            for e in &errors {
                tracing::error!(target: "telltale::reload", "{e}");
            }
            process.reloads.failed();
            tracing::error!(target: "telltale::reload", reason = why, errors = errors.len(),
                "reload ({why}) failed with {} error{}; still serving the previous manifest",
                errors.len(), if errors.len() == 1 { "" } else { "s" });
            None
        }
    }
}

/// Settings read once at start-up that changed: (field, before, after).
fn restart_only(
    before: &crate::model::Model,
    after: &crate::model::Model,
) -> Vec<(&'static str, String, String)> {
    use crate::manifest::Manifest;
    fn text<T: serde::Serialize + ?Sized>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    type Field = (&'static str, fn(&Manifest) -> String);
    let fields: [Field; 6] = [
        ("service.name", |m| text(&m.service.name)),
        ("service.host", |m| text(&m.service.host)),
        ("service.port", |m| text(&m.service.port)),
        ("service.limits", |m| text(&m.service.limits)),
        ("service.shutdown_timeout_seconds", |m| {
            text(&m.service.shutdown_timeout_seconds)
        }),
        ("logging", |m| text(&m.logging)),
    ];
    fields
        .into_iter()
        .map(|(name, f)| (name, f(&before.manifest), f(&after.manifest)))
        .filter(|(_, x, y)| x != y)
        .collect()
}

/// The file watch of `serve --watch`: the directories of the manifest and
/// its data files (an editor's save often replaces a file by renaming), and
/// only events on those files.
///
/// A file reached through symbolic links is followed link by link: every
/// link on its way and the file it ends at are watched. A Kubernetes
/// ConfigMap is mounted that way (`manifest.yaml` → `..data/manifest.yaml`,
/// `..data` → `..<timestamp>`), and the kubelet updates it by renaming a
/// new `..data` link over the old one: that rename is an event on `..data`,
/// one of the links of the manifest's way.
struct Watch {
    watcher: notify::RecommendedWatcher,
    files: Arc<std::sync::Mutex<HashSet<PathBuf>>>,
    dirs: HashSet<PathBuf>,
}

impl Watch {
    fn new(tx: tokio::sync::mpsc::UnboundedSender<()>) -> notify::Result<Watch> {
        use notify::event::{AccessKind, AccessMode, EventKind};
        let files: Arc<std::sync::Mutex<HashSet<PathBuf>>> = Arc::default();
        let seen = files.clone();
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let Ok(ev) = ev else { return };
            let relevant = match ev.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                EventKind::Access(_) | EventKind::Other => false,
                _ => true,
            };
            let files = seen.lock().unwrap_or_else(|e| e.into_inner());
            if relevant && ev.paths.iter().any(|p| files.contains(p)) {
                let _ = tx.send(());
            }
        })?;
        Ok(Watch {
            watcher,
            files,
            dirs: HashSet::new(),
        })
    }

    /// Watches `inputs` (and stops watching directories none of them is in).
    fn follow(&mut self, inputs: &[PathBuf]) {
        use notify::Watcher;
        let watched: HashSet<PathBuf> = inputs.iter().flat_map(|p| way(p)).collect();
        let dirs: HashSet<PathBuf> = watched
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        for d in self.dirs.difference(&dirs) {
            let _ = self.watcher.unwatch(d);
        }
        for d in dirs.difference(&self.dirs) {
            if let Err(e) = self.watcher.watch(d, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(target: "telltale::reload", dir = %d.display(), "cannot watch {}: {e}", d.display());
            }
        }
        tracing::info!(target: "telltale::reload", files = inputs.len(), paths = watched.len(),
            "watching the manifest and its data files for changes");
        self.dirs = dirs;
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = watched;
    }
}

/// The most links followed on one file's way (Linux's own limit).
const MAX_LINKS: usize = 40;

/// The paths whose change changes what `p` reads: `p` made absolute (not
/// resolved), every symbolic link met while resolving it component by
/// component, and the path it finally resolves to. A path that does not
/// exist ends the walk where it is.
fn way(p: &Path) -> Vec<PathBuf> {
    let start = lexical_absolute(p);
    let mut out = vec![start.clone()];
    let mut pending = parts(&start);
    let mut at = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        match part {
            PathPart::Root => at = PathBuf::from("/"),
            PathPart::Parent => {
                at.pop();
            }
            PathPart::Name(name) => {
                let next = at.join(name);
                match std::fs::read_link(&next) {
                    Ok(target) if links < MAX_LINKS => {
                        links += 1;
                        out.push(next);
                        for part in parts(&target).into_iter().rev() {
                            pending.push_front(part);
                        }
                    }
                    _ => at = next,
                }
            }
        }
    }
    out.push(at);
    out.dedup();
    out
}

/// A path component still to resolve.
enum PathPart {
    Root,
    Parent,
    Name(std::ffi::OsString),
}

/// `p`'s components to resolve (`.` dropped).
fn parts(p: &Path) -> std::collections::VecDeque<PathPart> {
    use std::path::Component;
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathPart::Name(n.to_os_string())),
            Component::RootDir | Component::Prefix(_) => Some(PathPart::Root),
            Component::ParentDir => Some(PathPart::Parent),
            Component::CurDir => None,
        })
        .collect()
}

/// `p` joined to the working directory when relative, nothing resolved.
fn lexical_absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(p)
    }
}
