//! [`App`]: the entry point of a service built on telltale. It builds the
//! plugin [`Registry`] (the built-in kinds, then the user's) and runs the
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

use crate::cli::{Cli, Context};
use crate::plugins::handlers::HandlerKind;
use crate::plugins::metrics::MetricSourceKind;
use crate::plugins::Registry;
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;

/// A service: its registry of kinds and its default manifest.
pub struct App {
    ctx: Context,
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
            ctx: Context::default(),
            errors: Vec::new(),
        }
    }

    /// Registers a typed handler kind under the name it reports
    /// (`Handler::name`).
    pub fn handler<H: crate::plugins::handlers::typed::Handler>(self, handler: H) -> App {
        self.handler_kind(crate::plugins::handlers::typed::Kind::new(handler))
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

    /// The manifest used when there is neither `--manifest` nor a
    /// `./manifest.yaml`, usually `include_str!("../manifest.yaml")`.
    /// Its data files, if any, must be given as paths on disk.
    pub fn default_manifest(mut self, name: &str, text: &'static str) -> App {
        self.ctx.embedded = Some((format!("<embedded>/{name}"), text));
        self
    }

    /// The registry built so far.
    pub fn registry(&self) -> &Registry {
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
