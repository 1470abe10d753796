//! The plugin registry: a value that `App` builds and hands to validation
//! and the server. Built-in kinds are registered through the same calls as
//! a user's own (`KindRegistry::builtin`, in `plugins/`).

use super::dependencies::DependencyKind;
use super::kinds::{HandlerKind, MetricSourceKind, Middleware};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// Every handler kind and metric source kind a manifest may name, the
/// user's middleware, the service's identity, and what its start hooks
/// built once they have run.
#[derive(Clone, Default)]
pub struct KindRegistry {
    handlers: Vec<Arc<dyn HandlerKind>>,
    sources: Vec<Arc<dyn MetricSourceKind>>,
    dependencies: Vec<Arc<dyn DependencyKind>>,
    middleware: Vec<Arc<dyn Middleware>>,
    identity: Identity,
    /// The types start hooks provide, with their names (for errors).
    provided: Vec<(TypeId, &'static str)>,
    /// What the start hooks built: `None` until they ran (and always in
    /// `validate` and `render`).
    resources: Option<Resources>,
}

/// Who the service is: its name, version and commit, as the start-up line
/// and `build_info` report them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The service's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The commit it was built from.
    pub commit: String,
}

impl Default for Identity {
    /// telltale's own: the binary serving a manifest with no code of its own.
    fn default() -> Self {
        Identity {
            name: "telltale".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: super::COMMIT.into(),
        }
    }
}

/// What the start hooks built, one value per type; cheap to clone.
#[derive(Clone, Default)]
pub struct Resources(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Resources {
    /// The value of type `T` a start hook built.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0.get(&TypeId::of::<T>())?.clone().downcast::<T>().ok()
    }

    /// These resources and `value`.
    pub fn with<T: Any + Send + Sync>(&self, value: Arc<T>) -> Resources {
        let mut map = (*self.0).clone();
        map.insert(TypeId::of::<T>(), value);
        Resources(Arc::new(map))
    }
}

impl std::fmt::Debug for KindRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindRegistry")
            .field("handlers", &self.handler_names())
            .field("sources", &self.source_names())
            .finish()
    }
}

impl KindRegistry {
    /// No kinds at all.
    pub fn empty() -> KindRegistry {
        KindRegistry::default()
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

    /// Registers a dependency kind under the name it reports.
    pub fn add_dependency_kind(&mut self, kind: Arc<dyn DependencyKind>) -> Result<(), String> {
        if self.dependency_kind(kind.name()).is_some() {
            return Err(format!(
                "dependency kind {:?} is registered twice",
                kind.name()
            ));
        }
        self.dependencies.push(kind);
        Ok(())
    }

    /// The dependency kind called `name`.
    pub fn dependency_kind(&self, name: &str) -> Option<&dyn DependencyKind> {
        self.dependencies
            .iter()
            .find(|k| k.name() == name)
            .map(|k| &**k)
    }

    /// Every dependency kind's name, in registration order.
    pub fn dependency_kind_names(&self) -> Vec<&str> {
        self.dependencies.iter().map(|k| k.name()).collect()
    }

    /// Adds middleware around every handler (after authentication, inside
    /// telltale's observe layer), outermost first.
    pub fn add_middleware(&mut self, m: Arc<dyn Middleware>) {
        self.middleware.push(m);
    }

    /// The middleware, outermost first.
    pub fn middleware(&self) -> &[Arc<dyn Middleware>] {
        &self.middleware
    }

    /// Sets the service's identity.
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = identity;
    }

    /// The service's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Records that a start hook provides a `T`.
    pub fn add_provided<T: Any>(&mut self) {
        self.provided
            .push((TypeId::of::<T>(), std::any::type_name::<T>()));
    }

    /// Whether a start hook provides type `t`.
    pub fn provides(&self, t: TypeId) -> bool {
        self.provided.iter().any(|(p, _)| *p == t)
    }

    /// Sets what the start hooks built (serve only, before the model that
    /// handlers are set up with).
    pub fn set_resources(&mut self, r: Resources) {
        self.resources = Some(r);
    }

    /// What the start hooks built; `None` before they ran.
    pub fn resources(&self) -> Option<&Resources> {
        self.resources.as_ref()
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

    /// Every metric source kind, in registration order.
    pub fn source_kinds(&self) -> impl Iterator<Item = &dyn MetricSourceKind> {
        self.sources.iter().map(|k| &**k)
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
