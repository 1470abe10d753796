//! Validated model → the monitoring stack's files (`telltale render`).
//!
//! Each output file comes from a [`RenderTarget`] (one file per target under
//! `targets/`, registered in [`targets::TARGETS`]) filling a Handlebars
//! template from `templates/` (compiled into the binary). Everything is
//! rendered into memory first; [`write::write_atomic`] then swaps the whole
//! tree in, and [`drift::check`] compares it with what is on disk.
//!
//! Output is deterministic: no timestamps, every list in manifest or sorted
//! order, maps serialized in a fixed order.

pub mod drift;
mod engine;
pub mod escape;
pub mod links;
mod proof;
pub mod rules;
pub mod stack;
pub mod targets;
pub mod write;

use crate::model::Model;
use handlebars::Handlebars;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

#[cfg(any(test, feature = "internals"))]
pub use drift::{check, Drift};
pub use drift::check_with;
pub use targets::RenderTarget;
#[cfg(any(test, feature = "internals"))]
pub use write::{may_replace, write_atomic, MARKER};
pub use write::{write_atomic_with, KeptSecret, WriteError, ADMIN_ENV_FILE};

/// The containers the dependencies' kinds add to the compose stack, with
/// their dependency.
pub fn compose_services(
    model: &Model,
) -> Vec<(
    &crate::manifest::dependencies::Dependency,
    crate::model::dependencies::ComposeService,
)> {
    let m = &model.manifest;
    m.dependencies
        .iter()
        .zip(&model.dependencies)
        .filter_map(|(d, p)| p.compose(d, m).map(|c| (d, c)))
        .collect()
}

/// The secret files render keeps beside the stack besides Grafana's: one
/// per dependency container that needs a password.
pub fn kept_secrets(model: &Model) -> Vec<KeptSecret> {
    compose_services(model)
        .into_iter()
        .filter_map(|(_, c)| c.secret_file)
        .map(|(path, lines)| KeptSecret { path, lines })
        .collect()
}

/// Rendered files: relative path (with `/`) → contents.
pub type Files = BTreeMap<String, String>;

/// What a target sees while rendering.
pub struct Ctx<'a> {
    pub model: &'a Model,
    /// Where the service's log directory is, relative to the output directory
    /// (docker-compose mounts it into the log shipper).
    pub log_dir_from_out: String,
    /// Where the manifest's directory is, relative to the output directory
    /// (for the files docker-compose reads secrets from).
    pub manifest_dir_from_out: String,
    hb: &'static Handlebars<'static>,
    notice: String,
}

/// Every target's templates, compiled once per process (parsing them is
/// most of a small manifest's render).
fn compiled() -> Result<&'static Handlebars<'static>, String> {
    static ENGINE: std::sync::OnceLock<Result<Handlebars<'static>, String>> =
        std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let templates: Vec<(&str, &str)> = targets::TARGETS
                .iter()
                .flat_map(|t| t.templates().iter().copied())
                .collect();
            engine::engine(&templates)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl<'a> Ctx<'a> {
    pub fn new(model: &'a Model, from_out: FromOut) -> Result<Self, String> {
        let manifest_name = Path::new(&model.source.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "manifest.yaml".into());
        Ok(Ctx {
            model,
            log_dir_from_out: from_out.log_dir,
            manifest_dir_from_out: from_out.manifest_dir,
            hb: compiled()?,
            notice: format!(
                "Generated from {manifest_name} by `telltale render`. Do not edit: change {manifest_name} and re-render."
            ),
        })
    }

    /// The "generated, do not edit" line (without a comment marker).
    #[cfg(any(test, feature = "internals"))]
    pub fn notice(&self) -> &str {
        &self.notice
    }

    /// Renders template `name` with `data` (an object; `notice` is added to it).
    pub fn render(&self, name: &str, mut data: Json) -> Result<String, String> {
        if let Json::Object(o) = &mut data {
            o.insert("notice".into(), Json::String(self.notice.clone()));
        }
        self.hb
            .render(name, &data)
            .map_err(|e| format!("template {name}: {e}"))
    }
}

/// The manifest's directories as seen from the output directory, which
/// docker-compose resolves its paths against (see [`log_dir_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromOut {
    /// `logging.dir`, mounted into the log shipper.
    pub log_dir: String,
    /// The manifest's directory (where `keys: {file: …}` are).
    pub manifest_dir: String,
}

/// Only the log directory (the manifest's taken as the output directory).
impl From<String> for FromOut {
    fn from(log_dir: String) -> Self {
        FromOut {
            log_dir,
            manifest_dir: ".".into(),
        }
    }
}

/// Renders every target, with the manifest's directories as seen from the
/// output directory (see [`log_dir_from`]; a bare `String` is the log
/// directory alone).
pub fn render_all(model: &Model, from_out: impl Into<FromOut>) -> Result<Files, String> {
    let ctx = Ctx::new(model, from_out.into())?;
    let mut files = Files::new();
    for t in targets::TARGETS {
        for (path, text) in t.render(&ctx).map_err(|e| format!("{}: {e}", t.name()))? {
            if files.insert(path.clone(), text).is_some() {
                return Err(format!("{}: {path} is rendered twice", t.name()));
            }
        }
    }
    proof::check(&model.manifest, &files)?;
    Ok(files)
}

/// The dashboard JSON exactly as `render` writes it (for `GET /grafana/dashboard`).
pub fn render_dashboard(model: &Model) -> Result<String, String> {
    let ctx = Ctx::new(model, String::new().into())?;
    targets::grafana_dashboard::render_json(&ctx)
}

/// `<manifest dir>/<logging.dir>` relative to `out`, for the shipper's
/// volume, and the manifest's directory relative to `out`.
pub fn log_dir_from(model: &Model, out: &Path) -> FromOut {
    FromOut {
        log_dir: dir_from(model, out, Path::new(&model.manifest.logging.dir)),
        manifest_dir: dir_from(model, out, Path::new(".")),
    }
}

/// `<manifest dir>/<dir>` relative to `out`.
///
/// Lexical: both paths are made absolute against the current directory. An
/// absolute `dir` is used as is.
fn dir_from(model: &Model, out: &Path, dir: &Path) -> String {
    if dir.is_absolute() {
        return dir.display().to_string();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let abs = |p: &Path| normalize(&cwd.join(p));
    let base = model.source.base_dir.clone().unwrap_or_default();
    let logs = abs(&base.join(dir));
    let rel = pathdiff::diff_paths(&logs, abs(out)).unwrap_or_default();
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

/// Removes `.` and resolves `..` lexically.
pub(crate) fn normalize(p: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}
