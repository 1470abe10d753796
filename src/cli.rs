//! Command-line interface: `serve` (default), `validate`, `render`, `chaos`, `verify`, `schema`.

use crate::model::{self, Model};
use crate::term::{errln, errout, out, outln};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "telltale",
    version,
    about = "One manifest → an instrumented HTTP service and its monitoring stack"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeArgs),
    /// Check the manifest and print every error with file:line:column.
    Validate(ManifestArg),
    /// Render the monitoring stack (Prometheus, Loki shippers, Grafana, compose).
    Render(RenderArgs),
    /// Send a seeded mix of good and bad requests to a running server and report.
    Chaos(ChaosArgs),
    /// Print the JSON Schema of manifest.yaml (for editors; render writes it too).
    Schema,
    /// Run every panel query and rule of the manifest against a live
    /// Prometheus (and Loki): which return data, and why the others do not.
    Verify(VerifyArgs),
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Base URL of the Prometheus to check, e.g. http://prometheus:9090.
    #[arg(long)]
    pub prometheus: String,
    /// Base URL of a Loki: the log panels are checked too.
    #[arg(long)]
    pub loki: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Per-query timeout.
    #[arg(long, default_value = "10s")]
    pub timeout: humantime::Duration,
    /// Exit 1 when an alerting rule is firing (its state is always shown).
    #[arg(long)]
    pub fail_on_firing: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Output directory, replaced atomically. Only a new or empty folder, or
    /// one render wrote (listed in its .telltale-render), is replaced; anything
    /// else, or a folder holding the manifest or its data, is refused (exit 2).
    #[arg(long, short = 'o', default_value = "generated")]
    pub out: PathBuf,
    /// Write nothing; exit 1 and show the differences if OUT is not what would be rendered.
    #[arg(long)]
    pub check: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ChaosArgs {
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Base URL of the server (default: http://127.0.0.1:<service.port>).
    /// Without --manifest, its /openapi.json must list the manifest's endpoints.
    #[arg(long)]
    pub target: Option<String>,
    /// How many requests to send (default 100, or rate × duration with --rate).
    #[arg(long)]
    pub requests: Option<usize>,
    /// Sustained traffic at this many requests per second (with --duration),
    /// so that the dashboard's rates move; without it, a burst.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long sustained traffic lasts, e.g. 2m (with --rate).
    #[arg(long, requires = "rate")]
    pub duration: Option<humantime::Duration>,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 4)]
    pub concurrency: usize,
    /// Share of bad requests, from 0 to 1.
    #[arg(long, default_value_t = 0.3)]
    pub bad_ratio: f64,
    /// Seed of the request mix (default: from the clock; printed in the report).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "10s")]
    pub timeout: humantime::Duration,
    /// A header on every request, e.g. a credential (repeatable). In the
    /// value, ${env:NAME} and ${file:PATH} are replaced by that variable or
    /// file, so the secret stays out of shell history:
    /// -H 'Authorization: Bearer ${env:TOKEN}'.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ManifestArg {
    /// Manifest file (default: ./manifest.yaml, else the embedded copy).
    #[arg(long, short = 'm', global = true)]
    pub manifest: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub manifest: ManifestArg,
    /// Listen address (overrides service.host).
    #[arg(long)]
    pub host: Option<String>,
    /// Listen port (overrides service.port; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Reload when the manifest or one of its data files changes on disk
    /// (SIGHUP always reloads).
    #[arg(long)]
    pub watch: bool,
    /// What the console (stderr) gets: `text` lines for people, or `json`,
    /// the log file's lines, for a container's log collector.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: crate::logging::ConsoleFormat,
    /// Write no log file: the console is the only output (in a container,
    /// whose log collector reads it; `logging.dir` is not used).
    #[arg(long)]
    pub no_log_file: bool,
}

/// How many requests `chaos` sends: `--requests`, else rate × duration
/// with `--rate` (duration default 1m), else 100.
fn chaos_requests(a: &ChaosArgs) -> Result<usize, String> {
    match (a.requests, a.rate) {
        (Some(_), Some(_)) if a.duration.is_some() => {
            Err("give --requests or --rate with --duration, not both".into())
        }
        (Some(n), _) => Ok(n),
        (None, Some(rate)) => {
            let secs = a
                .duration
                .map_or(60.0, |d| std::time::Duration::from(d).as_secs_f64());
            let n = (rate * secs).ceil();
            if !(1.0..=1e6).contains(&n) {
                return Err(format!(
                    "--rate {rate} for {secs}s is {n} requests; it must be from 1 to 1000000"
                ));
            }
            Ok(n as usize)
        }
        (None, None) => Ok(100),
    }
}

/// What the commands run with: the kinds a manifest may name, the
/// manifest used when there is neither `--manifest` nor `./manifest.yaml`,
/// and the service's lifecycle hooks (`serve` only).
#[derive(Clone)]
pub struct CommandContext {
    pub registry: crate::plugins::KindRegistry,
    /// (display name, text); `None`: the demo manifest compiled into telltale.
    pub embedded: Option<(String, &'static str)>,
    /// Run in order after validation, before the socket accepts.
    pub on_start: Vec<StartHook>,
    /// Run in order after the drain.
    pub on_shutdown: Vec<ShutdownHook>,
    /// The user's own `tracing` layers (`App::layer`), installed with
    /// telltale's by `serve`.
    pub layers: Arc<std::sync::Mutex<Vec<crate::logging::UserLayer>>>,
}

impl std::fmt::Debug for CommandContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandContext")
            .field("registry", &self.registry)
            .field("embedded", &self.embedded.as_ref().map(|e| &e.0))
            .field("on_start", &self.on_start.len())
            .field("on_shutdown", &self.on_shutdown.len())
            .finish()
    }
}

/// A boxed future of a hook.
pub type HookFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What a start hook is given: the validated manifest and what the hooks
/// before it built.
pub struct StartContext {
    /// The validated manifest being served.
    pub manifest: crate::manifest::Manifest,
    /// What the start hooks before this one built.
    pub resources: crate::model::Resources,
}

impl StartContext {
    /// The client of dependency `name` (see `Setup::dependency`), e.g. to
    /// run a database's migrations at start.
    pub fn dependency<C: std::any::Any + Send + Sync + Clone>(
        &self,
        name: &str,
    ) -> Result<C, String> {
        self.resources
            .get::<crate::model::dependencies::Running>()
            .ok_or_else(|| "the manifest declares no dependencies".to_string())?
            .client::<C>(name)
    }

    /// The client of database dependency `name`.
    pub fn sql(&self, name: &str) -> Result<crate::plugins::dependencies::Sql, String> {
        self.dependency(name)
    }

    /// The client of `http` dependency `name`.
    pub fn http(&self, name: &str) -> Result<crate::plugins::dependencies::HttpClient, String> {
        self.dependency(name)
    }
}

/// A start hook: adds what it builds to the resources, or fails the start.
pub type StartHook =
    Arc<dyn Fn(StartContext) -> HookFuture<Result<crate::model::Resources, String>> + Send + Sync>;

/// A shutdown hook: given what the start hooks built.
pub type ShutdownHook = Arc<dyn Fn(crate::model::Resources) -> HookFuture<()> + Send + Sync>;

impl Default for CommandContext {
    fn default() -> Self {
        CommandContext {
            registry: crate::plugins::KindRegistry::builtin(),
            embedded: None,
            on_start: Vec::new(),
            on_shutdown: Vec::new(),
            layers: Arc::default(),
        }
    }
}

impl CommandContext {
    /// Loads and validates, printing diagnostics on failure.
    pub fn open(&self, arg: &ManifestArg) -> Result<Model, ExitCode> {
        let embedded = self.embedded.as_ref().map(|(n, t)| (n.as_str(), *t));
        model::open_or(arg.manifest.as_deref(), &self.registry, embedded).map_err(|d| {
            errln!("{d}");
            ExitCode::FAILURE
        })
    }
}

/// Runs `cli` with the built-in kinds only.
#[cfg(any(test, feature = "internals"))]
pub fn run(cli: Cli) -> ExitCode {
    run_with(cli, &CommandContext::default())
}

/// Runs `cli` with the kinds and default manifest of `ctx`.
pub fn run_with(cli: Cli, ctx: &CommandContext) -> ExitCode {
    let open = |a: &ManifestArg| ctx.open(a);
    match cli.command {
        None => serve(cli.serve, ctx),
        Some(Command::Serve(a)) => serve(a, ctx),
        Some(Command::Validate(a)) => match open(&a) {
            // Everything render checks, validate checks: the whole stack is
            // rendered in memory (and each file parsed back), nothing written.
            Ok(m) => match crate::render::render_all(&m, String::new()) {
                Err(e) => {
                    errln!(
                        "{}: the manifest is valid, but its stack cannot be rendered: {e}",
                        m.source.name
                    );
                    ExitCode::FAILURE
                }
                Ok(_) => report_valid(&m),
            },
            Err(code) => code,
        },
        Some(Command::Chaos(a)) => match (open(&a.manifest), chaos_requests(&a)) {
            (_, Err(e)) => {
                errln!("telltale chaos: {e}");
                ExitCode::from(2)
            }
            (Ok(m), Ok(requests)) => {
                errln!("telltale: manifest {}", m.origin());
                crate::chaos::run(
                    &m,
                    crate::chaos::ChaosOptions {
                        target: a.target,
                        requests,
                        rate: a.rate,
                        manifest_given: a.manifest.manifest.is_some(),
                        concurrency: a.concurrency,
                        bad_ratio: a.bad_ratio,
                        seed: a.seed,
                        json: a.json,
                        timeout: a.timeout.into(),
                        headers: a.headers,
                    },
                )
            }
            (Err(code), _) => code,
        },
        Some(Command::Render(a)) => render(a, ctx),
        Some(Command::Schema) => {
            out!("{}", crate::manifest::schema());
            ExitCode::SUCCESS
        }
        Some(Command::Verify(a)) => match open(&a.manifest) {
            Ok(m) => crate::verify::run(
                &m,
                crate::verify::VerifyOptions {
                    prometheus: a.prometheus,
                    loki: a.loki,
                    json: a.json,
                    timeout: a.timeout.into(),
                    fail_on_firing: a.fail_on_firing,
                },
            ),
            Err(code) => code,
        },
    }
}

/// What `validate` prints for a valid manifest: its counts and its series budget.
fn report_valid(m: &Model) -> ExitCode {
    outln!(
        "{}: ok ({} endpoints, {} metrics, {} panels, {} objectives)",
        m.source.name,
        m.manifest.endpoints.len(),
        m.manifest.metrics.len(),
        m.manifest.dashboard.panels.len(),
        m.manifest.objectives.len()
    );
    let limit = m
        .manifest
        .service
        .series_limit
        .map_or("no series_limit".to_string(), |l| {
            format!("series_limit {l}")
        });
    outln!(
        "series budget: at most {} series ({limit}; largest: {})",
        m.budget.total(),
        m.budget
            .largest(3)
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ExitCode::SUCCESS
}

fn render(args: RenderArgs, ctx: &CommandContext) -> ExitCode {
    let model = match ctx.open(&args.manifest) {
        Ok(m) => m,
        Err(code) => {
            errln!("telltale: nothing rendered");
            return code;
        }
    };
    errln!("telltale: manifest {}", model.origin());
    let log_dir = crate::render::log_dir_from(&model, &args.out);
    let files = match crate::render::render_all(&model, log_dir) {
        Ok(f) => f,
        Err(e) => {
            errln!("telltale: render failed, nothing written: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kept = crate::render::kept_secrets(&model);
    let out = args.out.display();
    if args.check {
        return match crate::render::check_with(&args.out, &files, &kept) {
            Ok(d) if d.is_clean() => {
                outln!("{out}: up to date ({} files)", files.len());
                ExitCode::SUCCESS
            }
            Ok(d) => {
                errout!("{d}");
                errln!(
                    "{out} differs from what {} renders; run `telltale render`",
                    model.source.name
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                errln!("telltale: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match crate::render::write_atomic_with(&args.out, &files, &kept, &model.inputs()) {
        Ok(w) => {
            for p in files.keys() {
                outln!("  {out}/{p}");
            }
            outln!("rendered {} files into {out}", w.files);
            outln!(
                "Grafana admin password: {} ({})",
                w.admin_env.display(),
                if w.admin_env_created {
                    "created"
                } else {
                    "kept"
                }
            );
            for (path, created) in &w.kept {
                outln!(
                    "database password: {} ({})",
                    path.display(),
                    if *created { "created" } else { "kept" }
                );
            }
            ExitCode::SUCCESS
        }
        Err(crate::render::WriteError::Refused(e)) => {
            errln!("telltale: render refused: {e}");
            ExitCode::from(2)
        }
        Err(crate::render::WriteError::Failed(e)) => {
            errln!("telltale: render failed, {out} left as it was: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the start hooks, then sets the handlers up again with what they
/// built (validation set them up without it). Returns the model to serve,
/// the registry reloads use, and the resources for the shutdown hooks.
async fn start(
    model: Arc<Model>,
    ctx: &CommandContext,
    arg: &ManifestArg,
) -> Result<
    (
        Arc<Model>,
        crate::plugins::KindRegistry,
        crate::model::Resources,
    ),
    String,
> {
    let mut registry = ctx.registry.clone();
    let mut resources = crate::model::Resources::default();
    let running = crate::server::dependencies::start(&model).await?;
    if let Some(r) = &running {
        resources = resources.with(r.clone());
    }
    if ctx.on_start.is_empty() && running.is_none() {
        registry.set_resources(resources.clone());
        return Ok((model, registry, resources));
    }
    for (i, hook) in ctx.on_start.iter().enumerate() {
        let started = StartContext {
            manifest: model.manifest.clone(),
            resources: resources.clone(),
        };
        resources = hook(started)
            .await
            .map_err(|e| format!("start hook {} failed: {e}", i + 1))?;
    }
    registry.set_resources(resources.clone());
    let with = CommandContext {
        registry: registry.clone(),
        ..ctx.clone()
    };
    let model = with.open(arg).map_err(|_| {
        "the manifest failed validation with the start hooks' resources".to_string()
    })?;
    tracing::info!(target: "telltale::server", hooks = ctx.on_start.len(), "start hooks done");
    Ok((Arc::new(model), registry, resources))
}

fn serve(args: ServeArgs, ctx: &CommandContext) -> ExitCode {
    let model = match ctx.open(&args.manifest) {
        Ok(m) => Arc::new(m),
        Err(code) => {
            errln!("telltale: refusing to start with an invalid manifest");
            return code;
        }
    };
    let layers = std::mem::take(&mut *ctx.layers.lock().unwrap_or_else(|e| e.into_inner()));
    let guard = match crate::logging::init(
        &model.manifest.logging,
        args.log_format,
        !args.no_log_file,
        layers,
    ) {
        Ok(g) => g,
        Err(e) => {
            errln!("telltale: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("telltale: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bind = crate::server::Bind {
        host: args.host,
        port: args.port,
    };
    let result = runtime.block_on(async {
        let (model, registry, resources) = start(model, ctx, &args.manifest).await?;
        let reload = crate::server::Reload {
            registry,
            watch: args.watch,
        };
        let served = crate::server::serve(model.clone(), bind, reload).await;
        let grace = std::time::Duration::from_secs(model.manifest.service.shutdown_timeout_seconds);
        for hook in &ctx.on_shutdown {
            if tokio::time::timeout(grace, hook(resources.clone())).await.is_err() {
                tracing::warn!(target: "telltale::server", seconds = grace.as_secs(), "a shutdown hook was cut off after service.shutdown_timeout_seconds");
            }
        }
        served
    });
    // A reload stuck in a blocking read (a network file system that stopped
    // answering, say) must not hold the exit: blocking tasks get a moment,
    // then are left behind as the process ends.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // Flush the log file before exiting.
    drop(guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("telltale: {e}");
            ExitCode::FAILURE
        }
    }
}
