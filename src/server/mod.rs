//! Validated model → running HTTP server.
//!
//! `assemble` builds the registry, the routes and the docs from a [`Model`];
//! `serve` binds, runs the samplers and shuts down gracefully.

pub mod auth;
pub mod context;
pub mod datasource;
pub mod dependencies;
pub mod error;
pub(crate) mod families;
pub mod http_metrics;
mod limits;
mod observe;
pub(crate) mod openapi;
pub mod openmetrics;
mod reload;
mod routes;
mod self_metrics;

use crate::model::Model;
use families::{Families, Tasks, Unit};
use http_metrics::HttpMetrics;
use poem::listener::{Acceptor, Listener, TcpListener};
use prometheus::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub use observe::Observe;
pub use reload::Reload;

/// What lives as long as the process, across reloads.
pub struct Process {
    pub started_at: SystemTime,
    pub start: Instant,
    /// True once data and metrics are loaded and the socket is bound.
    pub ready: AtomicBool,
    /// True once a shutdown signal arrived.
    pub draining: AtomicBool,
    /// What the connection limits counted (`server::limits`).
    pub connections: Arc<limits::AcceptCounts>,
    /// telltale's own families: process, log writer, connections, reloads.
    pub own: Registry,
    /// The outcome of reloads (`telltale_config_last_reload_*`).
    pub reloads: reload::ReloadStats,
    /// The started dependencies (`/ready` and `telltale_dependency_*`).
    pub dependencies: Option<Arc<crate::model::dependencies::Running>>,
}

impl Process {
    #[cfg(any(test, feature = "internals"))]
    pub fn new() -> Result<Arc<Process>, String> {
        Process::with_dependencies(None)
    }

    /// A process that also exposes and reports `dependencies`.
    pub fn with_dependencies(
        dependencies: Option<Arc<crate::model::dependencies::Running>>,
    ) -> Result<Arc<Process>, String> {
        let own = Registry::new();
        #[cfg(target_os = "linux")]
        own.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .map_err(|e| format!("cannot register process metrics: {e}"))?;
        own.register(Box::new(
            self_metrics::LogWriter::new().map_err(|e| e.to_string())?,
        ))
        .map_err(|e| format!("cannot register the log writer's metrics: {e}"))?;
        own.register(Box::new(
            self_metrics::Traces::new().map_err(|e| e.to_string())?,
        ))
        .map_err(|e| format!("cannot register the trace exporter's metrics: {e}"))?;
        let connections = Arc::new(limits::AcceptCounts::default());
        own.register(Box::new(
            self_metrics::Connections::new(connections.clone()).map_err(|e| e.to_string())?,
        ))
        .map_err(|e| format!("cannot register the connection metrics: {e}"))?;
        if let Some(d) = &dependencies {
            own.register(Box::new(SharedCollector(d.clone())))
                .map_err(|e| format!("cannot register the dependency metrics: {e}"))?;
        }
        let started_at = SystemTime::now();
        let reloads = reload::ReloadStats::new(&own, started_at)
            .map_err(|e| format!("cannot register the reload metrics: {e}"))?;
        Ok(Arc::new(Process {
            started_at,
            start: Instant::now(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            connections,
            own,
            reloads,
            dependencies,
        }))
    }
}

/// A collector shared with its owner (the dependencies' families).
struct SharedCollector<C>(Arc<C>);

impl<C: prometheus::core::Collector> prometheus::core::Collector for SharedCollector<C> {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }
    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

/// The state handlers see: one per served manifest (a reload makes a new
/// one; requests in flight finish on the one they started on).
pub struct Runtime {
    pub model: Arc<Model>,
    pub process: Arc<Process>,
    /// The families `/metrics` exposes.
    pub metrics: Arc<Families>,
    pub http: HttpMetrics,
    /// The Grafana JSON datasource's ring buffer and event store.
    pub datasource: Arc<datasource::Live>,
    /// The `auth:` schemes with their keys loaded.
    pub auth: auth::Schemes,
}

impl crate::model::kinds::Host for Runtime {
    fn model(&self) -> &Arc<Model> {
        &self.model
    }
    fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.metrics.gather()
    }
    fn ready(&self) -> bool {
        self.process.ready.load(Ordering::Acquire)
    }
    fn draining(&self) -> bool {
        self.process.draining.load(Ordering::Acquire)
    }
    fn started_at(&self) -> SystemTime {
        self.process.started_at
    }
    fn uptime(&self) -> std::time::Duration {
        self.process.start.elapsed()
    }
    fn extension(&self, t: std::any::TypeId) -> Option<&(dyn std::any::Any + Send + Sync)> {
        if t == std::any::TypeId::of::<HttpMetrics>() {
            return Some(&self.http);
        }
        if t == std::any::TypeId::of::<Arc<crate::model::dependencies::Running>>() {
            return self
                .process
                .dependencies
                .as_ref()
                .map(|d| d as &(dyn std::any::Any + Send + Sync));
        }
        (t == std::any::TypeId::of::<Arc<datasource::Live>>())
            .then_some(&self.datasource as &(dyn std::any::Any + Send + Sync))
    }
}

/// Everything one manifest serves: its runtime, its routes and its timers.
pub struct ServedManifest {
    pub runtime: Arc<Runtime>,
    /// Not boxed: every box between poem and a handler costs an allocation
    /// and a copy of the request per request.
    pub endpoint: Observe<routes::Router>,
    /// Its routes: the next reload prunes the series of those it removes.
    table: routes::RouteTable,
    /// The datasource's sampler.
    tasks: Tasks,
}

impl ServedManifest {
    /// Starts each declared route's series at zero.
    fn touch(&self) {
        self.table.touch_declared(&self.runtime);
    }

    /// Removes from the HTTP families the series of routes this app does not
    /// serve: templates it lacks (whatever the method), and pairs `before`
    /// declared that it does not. Called once no request runs on the app
    /// before it, which could add them back.
    fn prune(&self, before: &[(String, String)]) {
        let mut keep = self.table.templates();
        keep.push(http_metrics::UNMATCHED.to_string());
        let gone = reload::Gone::new(before, &self.table.declared(), keep);
        for u in &self.runtime.metrics.units {
            if let Some((v, labels)) = &u.http_requests {
                gone.prune(v, labels);
            }
            if let Some((v, labels)) = &u.http_duration {
                gone.prune(v, labels);
            }
        }
    }

    /// Starts the timers not started yet (new units and the datasource's).
    fn start(&self) {
        self.runtime.metrics.start();
        self.tasks.start();
    }
}

/// Installs the metric sources and builds the routes.
#[cfg(any(test, feature = "internals"))]
pub fn assemble(model: Arc<Model>) -> Result<ServedManifest, String> {
    assemble_after(model, Process::new()?, None)
}

/// Builds the app for `model`. After a reload (`previous`), a metric whose
/// prepared source the model carried over keeps its installed family; the
/// shared HTTP families are left alone until the reload succeeds
/// ([`ServedManifest::touch`], [`ServedManifest::prune`]).
fn assemble_after(
    model: Arc<Model>,
    process: Arc<Process>,
    previous: Option<&ServedManifest>,
) -> Result<ServedManifest, String> {
    let mut units = Vec::with_capacity(model.sources.len());
    for (metric, src) in model.manifest.metrics.iter().zip(&model.sources) {
        let kept = previous.and_then(|p| {
            p.runtime
                .metrics
                .units
                .iter()
                .find(|u| Arc::ptr_eq(&u.source, src))
                .cloned()
        });
        units.push(match kept {
            Some(u) => u,
            None => Arc::new(Unit::install(metric, src)?),
        });
    }
    let requests = units.iter().find_map(|u| u.http_requests.clone());
    let duration = units.iter().find_map(|u| u.http_duration.clone());
    let help = (model.manifest.metrics.iter())
        .map(|m| (m.name.clone(), m.help.clone()))
        .collect();
    let metrics = Arc::new(Families {
        own: process.own.clone(),
        units,
        help,
    });
    let (datasource, ds_sampler) = datasource::start(
        &model,
        &metrics,
        process.started_at,
        previous.map(|p| &*p.runtime.datasource),
    );
    // Keys are read at each start and reload: a reload rotates them.
    let schemes = auth::Schemes::load(&model)?;
    let table = routes::RouteTable::new(&model.manifest);
    let http = HttpMetrics::new(
        table.templates(),
        requests,
        duration,
        model.statuses.clone(),
    );
    let runtime = Arc::new(Runtime {
        model: model.clone(),
        process,
        metrics,
        http,
        datasource,
        auth: schemes,
    });
    let route = table.build(&runtime)?;
    let limit = model.manifest.service.body_limit_bytes;
    let endpoint = Observe::new(route, runtime.clone(), limit);
    let app = ServedManifest {
        runtime,
        endpoint,
        table,
        tasks: Tasks::new(vec![ds_sampler]),
    };
    // After a reload the shared HTTP families change only once the new
    // app is known to be good (`reload`), never for one that fails.
    if previous.is_none() {
        app.touch();
    }
    Ok(app)
}

/// Counts and logs each request hyper refuses before routing (414, 431,
/// malformed 400): under the `unmatched` path and a standard method (or
/// `OTHER`), so the labels stay a closed set.
fn report_rejections(current: &Arc<reload::Current>, process: &Process) {
    let weak = Arc::downgrade(current);
    process
        .connections
        .on_reject
        .set(move |r: limits::Rejected| {
            let Some(current) = weak.upgrade() else {
                return;
            };
            let app = current.load_full();
            let rt = &app.runtime;
            let method = r.method.map_or(http_metrics::OTHER_METHOD, |m| m.index());
            // Its span (when sampled) is the counter's exemplar.
            let span = trace_rejection(&r);
            rt.http
                .count_only_in(rt.http.unmatched(), method, r.status, span);
            let reason = match r.status {
                414 => "the request target is too long",
                431 => "the request head is too large",
                _ => "the request is malformed",
            };
            let peer = r.peer.map(|p| p.to_string()).unwrap_or_default();
            tracing::warn!(
                target: "telltale::http",
                status = r.status,
                method = http_metrics::method_label(method),
                peer = %peer,
                "request refused before routing: {reason}"
            );
        });
}

/// Installs the span exporter when the manifest's `tracing:` or the
/// `OTEL_*` environment variables name an endpoint (read once, here: a
/// reload does not change where spans go).
fn start_tracing(model: &Model, instance: &str) -> Result<(), String> {
    let svc = &model.manifest.service;
    let service = crate::traces::config::TracedService {
        name: &svc.name,
        version: &svc.version,
        instance,
    };
    let env = |k: &str| std::env::var(k).ok();
    let cfg = crate::traces::config::resolve(
        &model.manifest.tracing,
        &service,
        model.source.base_dir.as_deref(),
        &env,
    )
    .map_err(|e| format!("tracing: {e}"))?;
    let Some(cfg) = cfg else {
        return Ok(());
    };
    let (url, sampler, ratio) = (cfg.url.clone(), cfg.sampling.sampler, cfg.sampling.ratio);
    if crate::traces::tracer().is_none() {
        crate::traces::export::install(cfg).map_err(|e| format!("tracing: {e}"))?;
    }
    tracing::info!(
        target: "telltale::traces",
        endpoint = %url,
        sampler = sampler.as_str(),
        ratio,
        "spans are exported over OTLP/HTTP"
    );
    Ok(())
}

/// A request hyper refused before routing is a server span too: a new
/// trace (its headers were not read), named by its method alone. Returns
/// the span when it is recorded.
fn trace_rejection(r: &limits::Rejected) -> Option<crate::traces::SpanContext> {
    let t = crate::traces::tracer()?;
    let s = t.start(None);
    if !s.sampled {
        return None;
    }
    let now = crate::traces::span::now_ns();
    // A method no route serves is `_OTHER`, as the conventions name it.
    let method = r.method.map(|m| m.to_http());
    t.submit(crate::traces::span::SpanRecord {
        trace_id: s.trace_id,
        span_id: s.span_id,
        parent: None,
        trace_state: None,
        start_ns: now,
        end_ns: now,
        body: crate::traces::span::Body::Server(crate::traces::span::Http {
            method,
            route: None,
            status: r.status,
            path: "".into(),
            scheme: "http",
            host: None,
            port: 0,
            user_agent: None,
        }),
        events: Default::default(),
        error: None,
    });
    Some(s)
}

/// Where to listen (overrides of the manifest's `service.host`/`port`).
pub struct Bind {
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// Runs until SIGINT/SIGTERM, then drains in-flight requests. SIGHUP (and,
/// with `reload.watch`, a change to the manifest or a data file) reloads.
pub async fn serve(model: Arc<Model>, bind: Bind, reload: Reload) -> Result<(), String> {
    let svc = &model.manifest.service;
    let host = bind.host.unwrap_or_else(|| svc.host.clone());
    let port = bind.port.unwrap_or(svc.port as u16);
    let grace = std::time::Duration::from_secs(svc.shutdown_timeout_seconds);
    // From the start: a SIGHUP while starting must not end the process.
    let hangup = reload::hangup()?;
    let acceptor = TcpListener::bind(format!("{host}:{port}"))
        .into_acceptor()
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    // Every log line names the instance, with the port really bound.
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().map(|a| a.port()))
        .unwrap_or(port);
    let declared = model.manifest.scrape_targets();
    let instance = crate::logging::identity::instance(bound, &declared);
    crate::logging::identity::set(&svc.name, &instance);
    start_tracing(&model, &instance)?;
    tracing::info!(target: "telltale::server", manifest = %model.origin(), "manifest loaded");
    let process = Process::with_dependencies(
        reload
            .registry
            .resources()
            .and_then(|r| r.get::<crate::model::dependencies::Running>()),
    )?;
    let app = assemble_after(model.clone(), process.clone(), None)?;
    let l = &svc.limits;
    let secs = std::time::Duration::from_secs;
    let acceptor = limits::Guarded::new(
        acceptor,
        limits::Limits {
            header: secs(l.header_timeout_seconds),
            body: secs(l.body_timeout_seconds),
            idle: secs(l.idle_timeout_seconds),
            max_connections: l.max_connections,
        },
        process.connections.clone(),
    );
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .map(|a| a.to_string())
        .unwrap_or_else(|| format!("{host}:{port}"));
    app.runtime
        .datasource
        .record_startup(&model, process.started_at);
    app.start();
    let current = Arc::new(reload::Current::new(app));
    report_rejections(&current, &process);
    let signal = {
        let process = process.clone();
        let received = shutdown_signal()?;
        async move {
            let name = received.await;
            process.draining.store(true, Ordering::Release);
            tracing::info!(target: "telltale::server", signal = name, "shutdown signal received; draining in-flight requests");
        }
    };
    // Before the server announces itself: a SIGHUP from then on reloads.
    let reloader = reload::start(current.clone(), process.clone(), reload, hangup)?;
    process.ready.store(true, Ordering::Release);
    let id = &model.identity;
    tracing::info!(
        target: "telltale::server",
        address = %local,
        version = %id.version,
        commit = %id.commit,
        "{} {} listening on http://{local} (docs: http://{local}/docs)",
        id.name,
        id.version
    );
    // Tests and scripts read this line to find an ephemeral port. A closed
    // stdout must not stop the server (println! would panic).
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "telltale listening on http://{local}").and_then(|()| out.flush());
    }
    let served = poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(reload::Served(current), signal, Some(grace))
        .await
        .map_err(|e| format!("server error: {e}"));
    reloader.abort();
    // The spans of the drained requests are exported before the process ends.
    if let Some(t) = crate::traces::tracer() {
        t.flush();
    }
    served?;
    tracing::info!(target: "telltale::server", "server stopped");
    Ok(())
}

/// Registers handlers for every signal that ends the server (SIGINT,
/// SIGTERM, SIGQUIT) now, before the server announces itself, and
/// resolves with the first that arrives: each one drains and flushes.
/// SIGHUP reloads (`reload::start`).
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let on =
        |k: SignalKind, name: &str| signal(k).map_err(|e| format!("cannot handle {name}: {e}"));
    let mut int = on(SignalKind::interrupt(), "SIGINT")?;
    let mut term = on(SignalKind::terminate(), "SIGTERM")?;
    let mut quit = on(SignalKind::quit(), "SIGQUIT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = quit.recv() => "SIGQUIT",
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::{Endpoint, Request};

    /// The lint knows every family the server adds (some appear only once
    /// they have a series: the log writer's error counters, or
    /// `process_virtual_memory_max_bytes` under a limit).
    #[test]
    fn the_lints_own_families_are_what_the_server_exposes() {
        let process = Process::new().unwrap();
        let mut exposed: Vec<(String, String)> = process
            .own
            .gather()
            .iter()
            .map(|f| (f.name().to_string(), format!("{:?}", f.get_field_type())))
            .collect();
        exposed.sort();
        let mut listed: Vec<(String, String)> = crate::model::lint::OWN_FAMILIES
            .iter()
            .map(|(n, k, _)| (n.to_string(), format!("{k:?}").to_uppercase()))
            .collect();
        listed.sort();
        let unknown: Vec<_> = exposed.iter().filter(|e| !listed.contains(e)).collect();
        assert!(unknown.is_empty(), "not in lint::OWN_FAMILIES: {unknown:?}");
        assert!(exposed.len() >= 10, "{exposed:?}");
    }

    /// poem copies the middleware's future into a box on every request. It
    /// holds the router's future once (not twice, as when the task-local
    /// scope was an `async fn` wrapper: 5.5 KiB instead of 3.2 KiB).
    #[test]
    fn the_middlewares_future_holds_the_routers_future_once() {
        let model = crate::model::open(None, &crate::plugins::KindRegistry::builtin())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let app = assemble(Arc::new(model)).unwrap();
        let req = || Request::builder().uri_str("/products").finish();
        let router = std::mem::size_of_val(&poem::Route::new().call(req()));
        let observe = std::mem::size_of_val(&app.endpoint.call(req()));
        assert!(
            observe < router + 2 * std::mem::size_of::<Request>() + 512,
            "middleware future {observe} bytes, router future {router}"
        );
    }
}
