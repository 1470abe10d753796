//! [`App`]: the entry point of a service built on telltale. It builds the
//! plugin [`KindRegistry`] (the built-in kinds, then the user's) and runs the
//! same `serve` / `validate` / `render` / `chaos` command line as the
//! `telltale` binary.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     telltale::App::new()
//!         // .handler(orders::Create)  // a typed handler kind (see `telltale::Handler`)
//!         .run_cli()
//! }
//! ```

use crate::cli::{Cli, CommandContext};
use crate::plugins::handlers::HandlerKind;
use crate::plugins::metrics::MetricSourceKind;
use crate::plugins::KindRegistry;
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;

/// A service: its registry of kinds and its default manifest.
pub struct App {
    ctx: CommandContext,
    /// Registration errors (a name taken twice), reported by `run_cli`.
    errors: Vec<String>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// The built-in kinds, and the demo manifest as the default.
    pub fn new() -> App {
        App {
            ctx: CommandContext::default(),
            errors: Vec::new(),
        }
    }

    /// Registers a typed handler kind under the name it reports
    /// (`Handler::name`).
    pub fn handler<H: crate::plugins::handlers::typed::Handler>(self, handler: H) -> App {
        self.handler_kind(crate::plugins::handlers::typed::TypedHandlerKind::new(
            handler,
        ))
    }

    /// Registers a low-level handler kind (as the built-ins are).
    pub fn handler_kind(mut self, kind: impl HandlerKind + 'static) -> App {
        if let Err(e) = self.ctx.registry.add_handler_kind(Arc::new(kind)) {
            self.errors.push(e);
        }
        self
    }

    /// Registers a metric source kind.
    pub fn metric_source(mut self, kind: impl MetricSourceKind + 'static) -> App {
        if let Err(e) = self.ctx.registry.add_source_kind(Arc::new(kind)) {
            self.errors.push(e);
        }
        self
    }

    /// Registers a dependency kind (a Redis client, a message queue): its
    /// `prepare` checks `dependencies[]` entries of its name, its `start`
    /// builds the client handlers get with `Setup::dependency`.
    pub fn dependency_kind(
        mut self,
        kind: impl crate::model::dependencies::DependencyKind + 'static,
    ) -> App {
        if let Err(e) = self.ctx.registry.add_dependency_kind(Arc::new(kind)) {
            self.errors.push(e);
        }
        self
    }

    /// Adds middleware around every handler: a poem `Middleware` over
    /// boxed endpoints, or any [`crate::model::kinds::Middleware`]. It runs
    /// after routing and authentication (`telltale::current_caller()`
    /// is the caller) and inside telltale's observe layer, so what it answers
    /// is counted, logged and carries the request id. The first added is
    /// the outermost.
    pub fn middleware(mut self, m: impl crate::model::kinds::Middleware) -> App {
        self.ctx.registry.add_middleware(Arc::new(m));
        self
    }

    /// A `tracing` layer of your own (a `tracing-opentelemetry` layer, a
    /// metrics layer), installed with telltale's when `serve` starts: it
    /// sees every span and event, the handlers' and telltale's. Do not
    /// install a global subscriber yourself: `serve` installs one.
    pub fn layer<L>(self, layer: L) -> App
    where
        L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        self.ctx
            .layers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(layer));
        self
    }

    /// The service's own name, version and commit, for the start-up line
    /// and `build_info` (default: telltale's). Usually
    /// `.identity(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), option_env!("GIT_COMMIT").unwrap_or("unknown"))`.
    pub fn identity(mut self, name: &str, version: &str, commit: &str) -> App {
        self.ctx.registry.set_identity(crate::model::Identity {
            name: name.into(),
            version: version.into(),
            commit: commit.into(),
        });
        self
    }

    /// An async start hook: runs in `serve` after the manifest is
    /// validated and before the socket accepts, in the order added. What it
    /// returns is a resource that handlers' `setup` gets with
    /// `Setup::resource::<T>()` (a pool, a client). An `Err` ends the
    /// process with that message. `validate` and `render` never run it.
    pub fn on_start<T, F, Fut>(mut self, hook: F) -> App
    where
        T: std::any::Any + Send + Sync,
        F: Fn(crate::cli::StartContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
    {
        self.ctx.registry.add_provided::<T>();
        let hook = Arc::new(hook);
        self.ctx.on_start.push(Arc::new(move |started| {
            let resources = started.resources.clone();
            let fut = hook(started);
            Box::pin(async move { Ok(resources.with(Arc::new(fut.await?))) })
        }));
        self
    }

    /// An async shutdown hook: runs after the server drained its requests,
    /// with what the start hooks built, for at most
    /// `service.shutdown_timeout_seconds`.
    pub fn on_shutdown<F, Fut>(mut self, hook: F) -> App
    where
        F: Fn(crate::model::Resources) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let hook = Arc::new(hook);
        self.ctx
            .on_shutdown
            .push(Arc::new(move |r| Box::pin(hook(r))));
        self
    }

    /// The manifest used when there is neither `--manifest` nor a
    /// `./manifest.yaml`, usually `include_str!("../manifest.yaml")`.
    /// Its data files, if any, must be given as paths on disk.
    pub fn default_manifest(mut self, name: &str, text: &'static str) -> App {
        self.ctx.embedded = Some((format!("<embedded>/{name}"), text));
        self
    }

    /// The registry built so far.
    pub fn registry(&self) -> &KindRegistry {
        &self.ctx.registry
    }

    /// Parses the process's arguments and runs the command.
    pub fn run_cli(self) -> ExitCode {
        self.run_cli_from(std::env::args_os())
    }

    /// Parses `args` (the first is the program name) and runs the command.
    pub fn run_cli_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        if !self.errors.is_empty() {
            for e in &self.errors {
                crate::term::errln!("telltale: {e}");
            }
            return ExitCode::from(2);
        }
        let cli = match Cli::try_parse_from(args) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
        };
        crate::cli::run_with(cli, &self.ctx)
    }
}
