//! Dependencies: the plugin interface of dependency kinds, the checks of
//! `dependencies:`, and what a started dependency is made of (its client,
//! its health, its metric handles).
//!
//! ```text
//! dependencies[i] ─► check ─► DependencyKind::prepare ─► PreparedDependency
//!                                                           │ start (serve only)
//!                                                           ▼
//!                   Running: per dependency its client, its up flag, its handles
//! ```
//!
//! The built-in kinds (`http`, `postgres`, `sqlite`) live in
//! `plugins/dependencies`; a service registers its own the same way.
//! Every label value of the dependency families comes from the manifest:
//! `dependency` is a declared name, `operation` one of the kind's declared
//! operations, `outcome` one of [`Outcome::ALL`].

use crate::manifest::dependencies::Dependency;
use crate::manifest::{Alert, Diagnostics, Manifest, Panel, SecretRef, Source};
use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use super::dependency_runtime::*;

/// How one call to a dependency ended: the closed set of the `outcome`
/// label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It answered (an HTTP status below 500, a query that ran).
    Ok,
    /// It answered with a failure (a 5xx, a database error), or the answer
    /// could not be read.
    Error,
    /// No answer within the dependency's `timeout`.
    Timeout,
    /// It could not be reached: the connection was refused or failed.
    Refused,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Refused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
        }
    }
}

/// What a dependency kind sees while preparing one dependency.
pub struct DependencyCtx<'a> {
    /// Its position in `dependencies:`.
    pub index: usize,
    /// Its declaration.
    pub dependency: &'a Dependency,
    /// The manifest declaring it.
    pub manifest: &'a Manifest,
    /// Where the manifest came from, for located diagnostics.
    pub source: &'a Source,
}

impl DependencyCtx<'_> {
    /// `dependencies[i].<field>`, for diagnostics.
    pub fn at(&self, field: &str) -> String {
        format!("dependencies[{}].{field}", self.index)
    }
    /// An error at `dependencies[i].<field>`.
    pub fn error(&self, field: &str, message: impl Into<String>) -> Diagnostics {
        Diagnostics(vec![self.source.error(&self.at(field), message)])
    }
    /// Parses `options:` as `T` (unknown keys are errors).
    pub fn options<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, Diagnostics> {
        let mut errs = Diagnostics::default();
        self.source
            .options(&self.dependency.options, &self.at("options"), &mut errs)
            .ok_or(errs)
    }
}

/// A dependency kind: `http`, `postgres`, `sqlite`, or a service's own.
pub trait DependencyKind: Send + Sync {
    /// The name used in `dependencies[].kind`.
    fn name(&self) -> &'static str;
    /// Checks `url` and `options`.
    fn prepare(&self, ctx: &DependencyCtx<'_>) -> Result<Arc<dyn PreparedDependency>, Diagnostics>;
}

/// A future a dependency's health check returns.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A dependency's health check: `Ok` while it answers.
pub type HealthCheck = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// A pool's connections right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open, idle or in use.
    pub size: u32,
    /// Connections open and idle.
    pub idle: u32,
}

/// Reads a pool's connections (at each scrape).
pub type PoolReader = Arc<dyn Fn() -> PoolStats + Send + Sync>;

/// What starting a dependency built.
pub struct Started {
    /// The client handlers get from `Setup` (the kind's client type).
    pub client: Arc<dyn Any + Send + Sync>,
    /// Its health check, run in the background.
    pub check: HealthCheck,
    /// Its pool's size, for the pool gauges (`None`: no pool).
    pub pool: Option<PoolReader>,
    /// Where it is, for the start-up line: never a password.
    pub shown: String,
}

/// What a prepared dependency is started with.
pub struct StartCtx<'a> {
    /// Its declaration.
    pub dependency: &'a Dependency,
    /// `url_from`'s value when it is set, else `url`; `None` when neither
    /// says where it is.
    pub target: Option<String>,
    /// Its metric handles, resolved once.
    pub telemetry: Telemetry,
    /// The manifest's directory (`None` for the embedded manifest), which
    /// `{file: path}` references are relative to.
    pub base_dir: Option<&'a std::path::Path>,
}

/// A validated dependency, ready to start.
pub trait PreparedDependency: Send + Sync {
    /// What it is, in OpenTelemetry's words: `http`, `postgresql`, `sqlite`.
    fn system(&self) -> &'static str;
    /// The closed set of its `operation` label (the HTTP methods, a
    /// database's declared operations).
    fn operations(&self) -> Vec<String>;
    /// The type of its client and that type's name, for `Setup`'s errors.
    fn client_type(&self) -> (TypeId, &'static str);
    /// Builds the client (serve only). Connections are opened lazily, so a
    /// dependency that is down does not stop the start: it is reported down.
    fn start(&self, ctx: StartCtx<'_>) -> Result<Started, String>;
    /// Whether it keeps a pool of connections (its row shows the pool).
    fn pooled(&self) -> bool {
        false
    }
    /// The dashboard panels it contributes (default: the row every
    /// dependency gets; when [`Self::pooled`], its state panel shows the
    /// pool too).
    fn panels(&self, d: &Dependency) -> Vec<Panel> {
        super::dependency_row::panels(d, self.pooled())
    }
    /// The alerts it contributes, each with its promtool fixtures (default:
    /// errors, latency and down).
    fn alerts(&self, d: &Dependency, m: &Manifest) -> Vec<Alert> {
        super::dependency_row::alerts(d, m)
    }
    /// The environment variables it reads secrets from at start besides
    /// `url_from` (a header's key), each with the key that holds it in the
    /// Kubernetes Secret `<service>-dependencies`.
    fn secret_env(&self, _d: &Dependency) -> Vec<(String, String)> {
        Vec::new()
    }
    /// A container it adds to the rendered compose stack (a database to
    /// develop against), if any.
    fn compose(&self, _d: &Dependency, _m: &Manifest) -> Option<ComposeService> {
        None
    }
}

/// A container a dependency kind adds to `docker-compose.yml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeService {
    /// Its compose service name (and host name on the stack's network).
    pub name: String,
    /// A pinned image.
    pub image: String,
    /// Plain settings (no secret).
    pub environment: Vec<(String, String)>,
    /// A git-ignored env file beside `docker-compose.yml` that `render`
    /// creates once with a random password (as Grafana's admin password),
    /// kept across renders and never written into a rendered file: its
    /// name, and its lines with `{password}` where the password goes.
    pub secret_file: Option<(String, Vec<String>)>,
    /// Ports published on `stack.publish`'s address (container = host).
    pub ports: Vec<u16>,
    /// A named volume and where it is mounted.
    pub volume: Option<(String, String)>,
    /// The healthcheck's `CMD-SHELL` command.
    pub healthcheck: Option<String>,
}

/// The dependency families' names.
pub const FAMILIES: [&str; 7] = [
    "telltale_dependency_request_duration_seconds",
    "telltale_dependency_requests_in_flight",
    "telltale_dependency_up",
    "telltale_dependency_pool_size",
    "telltale_dependency_pool_idle",
    "telltale_dependency_pool_waiting",
    "telltale_dependency_retries_total",
];

/// The buckets of `telltale_dependency_request_duration_seconds`.
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The name a message shows for the client type `C`: telltale's own types
/// by the path users import them from (the crate root re-exports every
/// public one), anything else as the compiler names it.
pub fn client_type_name<C: ?Sized>() -> String {
    let full = std::any::type_name::<C>();
    match full.strip_prefix("telltale::") {
        Some(rest) if !rest.contains('<') => {
            format!("telltale::{}", rest.rsplit("::").next().unwrap_or(rest))
        }
        _ => full.to_string(),
    }
}

/// Where `d` is: `url_from`'s value when the variable is set or the file
/// exists, else `url`. A file that exists but cannot be read is an error.
pub fn target(
    d: &Dependency,
    base_dir: Option<&std::path::Path>,
) -> Result<Option<String>, String> {
    if let Some(r) = &d.url_from {
        let present = match r {
            SecretRef::Env(name) => std::env::var_os(name).is_some(),
            SecretRef::File(path) => match base_dir {
                Some(b) => b.join(path).exists(),
                None => std::path::Path::new(path).exists(),
            },
        };
        if present {
            let (text, _) = r.read(base_dir)?;
            return Ok(Some(text.trim().to_string()));
        }
    }
    Ok(d.url.clone())
}

/// Why [`target`] found nothing for `d` (for the start's error or log
/// line): the variable or file `url_from` names, never its value.
pub fn missing(d: &Dependency) -> String {
    match &d.url_from {
        Some(SecretRef::Env(v)) => format!("the environment variable {v} is not set"),
        Some(SecretRef::File(p)) => format!("the file {p} does not exist"),
        None => "it has no url".into(),
    }
}

/// A dependency's name: lower-case letters, digits and `_`, starting with a
/// letter, at most 63 characters.
fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('a'..='z'))
        && s.len() <= 63
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

/// Whether `url` carries a password (`scheme://user:password@host`).
pub fn has_password(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.password().is_some())
}

/// Every error of `dependencies:` that is not the kind's own, located.
pub fn check(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let mut seen = std::collections::HashSet::new();
    for (i, d) in m.dependencies.iter().enumerate() {
        let at = |f: &str| format!("dependencies[{i}].{f}");
        if !is_name(&d.name) {
            errs.push(src.error(
                &at("name"),
                format!("{:?} is not a dependency name (lower-case letters, digits and `_`, starting with a letter, at most 63)", d.name),
            ));
        } else if !seen.insert(d.name.as_str()) {
            errs.push(src.error(
                &at("name"),
                format!("dependency {:?} is declared twice", d.name),
            ));
        }
        if let Some(u) = &d.url {
            if has_password(u) {
                errs.push(src.error(
                    &at("url"),
                    "a password never goes in the manifest: give the URL by reference (`url_from: {env: VAR}` or `{file: path}`)",
                ));
            }
        }
        if let Some(r) = &d.url_from {
            super::auth::check_ref(src, &at("url_from"), r, errs);
        }
        let (ms, secs) = (Duration::from_millis, Duration::from_secs);
        for (field, v, lo, hi) in [
            ("timeout", &d.timeout, ms(1), secs(300)),
            ("connect_timeout", &d.connect_timeout, ms(1), secs(300)),
            ("check_every", &d.check_every, ms(100), secs(3600)),
        ] {
            if v.get() < lo || v.get() > hi {
                errs.push(src.error(
                    &at(field),
                    format!(
                        "must be from {} to {}",
                        humantime::format_duration(lo),
                        humantime::format_duration(hi)
                    ),
                ));
            }
        }
    }
}
