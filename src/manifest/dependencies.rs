//! `dependencies:`: the databases and services this one calls. Each has a
//! name (its `dependency` label and what handlers ask `Setup` for), a kind
//! (`http`, `postgres`, `sqlite`, or one a service registers) and where it
//! is: a URL that holds no secret, or a reference to an environment
//! variable or a file that holds it. The kind's own settings sit under
//! `options:` and are checked by the kind.

use super::auth::SecretRef;
use super::values::PromDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

/// One dependency.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// Lower-case letters, digits and `_`, starting with a letter: the
    /// `dependency` label of its metrics, its dashboard row, and the name
    /// handlers ask for (`ctx.http("payments")`, `ctx.sql("orders_db")`).
    pub name: String,
    /// Its kind: `http`, `postgres`, `sqlite`, or a kind the service
    /// registers (`App::dependency_kind`).
    pub kind: String,
    /// Where it is, when that is no secret: `http://payments:8003` for
    /// `http`, `sqlite:orders.db` for `sqlite`. A URL with a password is
    /// refused: use `url_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where it is, by reference: `{env: DATABASE_URL}` or `{file: path}`,
    /// read when the server starts. When the variable is set (or the file
    /// exists) it wins over `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from: Option<SecretRef>,
    /// The longest one call may take, retries and waiting for a pooled
    /// connection included; past it the call fails with outcome `timeout`.
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// The longest opening a connection may take.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: PromDuration,
    /// `/ready` answers 503 while this dependency is down (checked in the
    /// background every `check_every`, never on the probe's own call).
    #[serde(default = "yes")]
    pub required: bool,
    /// How often its health is checked.
    #[serde(default = "default_check_every")]
    pub check_every: PromDuration,
    /// The kind's own settings, checked by the kind (see the manifest
    /// reference for the built-in kinds').
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub options: Value,
}

fn default_timeout() -> PromDuration {
    PromDuration::from_secs(5)
}

fn default_connect_timeout() -> PromDuration {
    PromDuration::from_secs(2)
}

fn default_check_every() -> PromDuration {
    PromDuration::from_secs(5)
}

fn yes() -> bool {
    true
}
