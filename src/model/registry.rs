//! The plugin registry: a value that `App` builds and hands to validation
//! and the server. Built-in kinds are registered through the same calls as
//! a user's own (`Registry::builtin`, in `plugins/`).

use super::kinds::{HandlerKind, MetricSourceKind};
use std::sync::Arc;

/// Every handler kind and metric source kind a manifest may name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: Vec<Arc<dyn HandlerKind>>,
    sources: Vec<Arc<dyn MetricSourceKind>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("handlers", &self.handler_names())
            .field("sources", &self.source_names())
            .finish()
    }
}

impl Registry {
    /// No kinds at all.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// Registers a handler kind under the name it reports; a name already
    /// taken is an error.
    pub fn add_handler_kind(&mut self, kind: Arc<dyn HandlerKind>) -> Result<(), String> {
        if self.handler(kind.name()).is_some() {
            return Err(format!(
                "handler kind {:?} is registered twice",
                kind.name()
            ));
        }
        self.handlers.push(kind);
        Ok(())
    }

    /// Registers a metric source kind under the name it reports.
    pub fn add_source_kind(&mut self, kind: Arc<dyn MetricSourceKind>) -> Result<(), String> {
        if self.source(kind.name()).is_some() {
            return Err(format!(
                "metric source kind {:?} is registered twice",
                kind.name()
            ));
        }
        self.sources.push(kind);
        Ok(())
    }

    /// The handler kind called `name`.
    pub fn handler(&self, name: &str) -> Option<&dyn HandlerKind> {
        self.handlers
            .iter()
            .find(|k| k.name() == name)
            .map(|k| &**k)
    }

    /// The metric source kind called `name`.
    pub fn source(&self, name: &str) -> Option<&dyn MetricSourceKind> {
        self.sources.iter().find(|k| k.name() == name).map(|k| &**k)
    }

    /// Every handler kind's name, in registration order.
    pub fn handler_names(&self) -> Vec<&str> {
        self.handlers.iter().map(|k| k.name()).collect()
    }

    /// Every metric source kind's name, in registration order.
    pub fn source_names(&self) -> Vec<&str> {
        self.sources.iter().map(|k| k.name()).collect()
    }
}
