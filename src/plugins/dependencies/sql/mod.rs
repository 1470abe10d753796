//! `kind: postgres` and `kind: sqlite`: a database, through a pool of
//! `sqlx` connections ([`Sql`]). Queries run as declared operations
//! ([`SqlOperation`], resolved once in `setup`): each call is one client
//! span with `db.system`, `db.operation.name` and `db.collection.name`
//! (never the statement or its values) and is counted under its
//! operation's name.
//!
//! ```yaml
//! dependencies:
//!   - name: orders_db
//!     kind: postgres
//!     url_from: { env: DATABASE_URL }
//!     timeout: 2s
//!     options:
//!       pool: 10
//!       local_sqlite: shop.db      # without DATABASE_URL: a SQLite file here
//!       operations:
//!         insert_order: { operation: INSERT, collection: orders }
//!         get_order: { operation: SELECT, collection: orders }
//! ```
//!
//! This file holds the kinds: their options and checks, what they add to
//! compose, the pool they start, and the client types; `client.rs` holds
//! how a query runs.

mod client;

use client::{error_text, SqlClientInner};

use crate::manifest::{Diagnostics, SecretRef};
use crate::model::dependencies::{
    CheckFuture, ComposeService, DependencyCtx, PoolStats, PreparedDependency, StartCtx, Started,
};
use serde::Deserialize;
use sqlx::any::AnyPoolOptions;
use std::any::TypeId;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The kinds: one database system each.
pub enum SqlDependency {
    Postgres,
    Sqlite,
}

/// The most connections `options.pool` may ask for.
const MAX_POOL: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Options {
    /// The most connections open at once.
    pool: u32,
    /// The queries handlers run, by name (the `operation` label).
    operations: BTreeMap<String, Operation>,
    /// `postgres` only: a SQLite database file that stands in when neither
    /// `url` nor `url_from` gives a DSN (local development).
    local_sqlite: Option<String>,
    /// The most rows `fetch_all` returns; more fail the call.
    max_rows: u64,
    /// `postgres` only: the image of the database `render` adds to the
    /// compose stack (pinned).
    image: String,
    /// `postgres` only: the host port it publishes.
    port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool: 10,
            operations: BTreeMap::new(),
            local_sqlite: None,
            max_rows: 10_000,
            image: "postgres:17.6-bookworm".into(),
            port: 5432,
        }
    }
}

/// One declared operation.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Operation {
    /// The SQL verb (`db.operation.name`): SELECT, INSERT, UPDATE, ...
    operation: String,
    /// The table it works on (`db.collection.name`).
    #[serde(default)]
    collection: Option<String>,
}

struct PreparedSqlDependency {
    kind: &'static str,
    system: &'static str,
    options: Options,
    names: Vec<String>,
    specs: Vec<Operation>,
}

fn is_label_value(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('a'..='z'))
        && s.len() <= 63
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

impl SqlDependency {
    fn schemes(&self) -> &'static [&'static str] {
        match self {
            SqlDependency::Postgres => &["postgres://", "postgresql://"],
            SqlDependency::Sqlite => &["sqlite:"],
        }
    }
}

/// The declared `options.operations`: each name a label value, each
/// operation an SQL verb, each collection a table name.
fn check_operations(
    ctx: &DependencyCtx<'_>,
    operations: &BTreeMap<String, Operation>,
    errs: &mut Diagnostics,
) {
    for (name, op) in operations {
        if !is_label_value(name) {
            errs.extend(ctx.error(
                &format!("options.operations.{name}"),
                format!(
                    "{name:?} is not an operation name (lower-case letters, digits and `_`)"
                ),
            ));
        }
        if op.operation.is_empty()
            || op.operation.len() > 32
            || !op
                .operation
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == ' ')
        {
            errs.extend(ctx.error(
                &format!("options.operations.{name}.operation"),
                "an SQL verb in upper case: SELECT, INSERT, UPDATE, DELETE, ...",
            ));
        }
        if let Some(c) = &op.collection {
            if c.is_empty()
                || c.len() > 128
                || !c
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.".contains(c))
            {
                errs.extend(ctx.error(
                    &format!("options.operations.{name}.collection"),
                    "a table name: letters, digits, `_` and `.`",
                ));
            }
        }
    }
}

impl crate::model::dependencies::DependencyKind for SqlDependency {
    fn name(&self) -> &'static str {
        match self {
            SqlDependency::Postgres => "postgres",
            SqlDependency::Sqlite => "sqlite",
        }
    }

    fn prepare(&self, ctx: &DependencyCtx<'_>) -> Result<Arc<dyn PreparedDependency>, Diagnostics> {
        let d = ctx.dependency;
        let mut options: Options = ctx.options()?;
        let mut errs = Diagnostics::default();
        let schemes = self.schemes();
        match (&d.url, &d.url_from) {
            (None, None) if options.local_sqlite.is_none() => errs.extend(ctx.error(
                "url_from",
                format!("a {} dependency needs `url_from` (or `url`)", self.name()),
            )),
            (Some(u), _) if !schemes.iter().any(|s| u.starts_with(s)) => errs.extend(ctx.error(
                "url",
                format!("a {} URL starts with {}", self.name(), schemes.join(" or ")),
            )),
            _ => {}
        }
        if !(1..=MAX_POOL).contains(&options.pool) {
            errs.extend(ctx.error("options.pool", format!("from 1 to {MAX_POOL} connections")));
        }
        if matches!(self, SqlDependency::Sqlite)
            && (options.image != Options::default().image
                || options.port != Options::default().port)
        {
            errs.extend(ctx.error(
                "options",
                "`image` and `port` are for kind postgres (the database render adds to compose)",
            ));
        }
        if options.image.is_empty()
            || options.image.len() > 256
            || !options.image.chars().all(|c| c.is_ascii_graphic())
        {
            errs.extend(ctx.error(
                "options.image",
                "an image reference such as postgres:17.6-bookworm",
            ));
        }
        if options.port == 0 {
            errs.extend(ctx.error("options.port", "a port from 1 to 65535"));
        }
        if options.max_rows == 0 {
            errs.extend(ctx.error("options.max_rows", "at least 1"));
        }
        match (&options.local_sqlite, self) {
            (Some(_), SqlDependency::Sqlite) => errs.extend(ctx.error(
                "options.local_sqlite",
                "only for kind postgres (a sqlite dependency's file is its `url`)",
            )),
            (Some(p), SqlDependency::Postgres) if p.trim().is_empty() || p.contains('?') => {
                errs.extend(ctx.error("options.local_sqlite", "a file path such as shop.db"))
            }
            _ => {}
        }
        if options.operations.is_empty() {
            errs.extend(ctx.error(
                "options.operations",
                "declare the operations handlers run (`insert_order: {operation: INSERT, collection: orders}`)",
            ));
        }
        check_operations(ctx, &options.operations, &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        let (names, specs) = std::mem::take(&mut options.operations).into_iter().unzip();
        Ok(Arc::new(PreparedSqlDependency {
            kind: self.name(),
            system: match self {
                SqlDependency::Postgres => "postgresql",
                SqlDependency::Sqlite => "sqlite",
            },
            options,
            names,
            specs,
        }))
    }
}

/// The URL to show: without its password (and without its query).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.scheme().starts_with("postgres") => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        _ => url.split('?').next().unwrap_or(url).to_string(),
    }
}

impl PreparedDependency for PreparedSqlDependency {
    fn system(&self) -> &'static str {
        self.system
    }

    fn operations(&self) -> Vec<String> {
        self.names.clone()
    }

    fn client_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<Sql>(), "telltale::Sql")
    }

    fn pooled(&self) -> bool {
        true
    }

    /// A Postgres to develop against: a pinned image, a volume, a
    /// healthcheck, and a password render generates into a git-ignored file
    /// (never into a rendered one), beside the URL the service reads.
    fn compose(
        &self,
        d: &crate::manifest::dependencies::Dependency,
        m: &crate::manifest::Manifest,
    ) -> Option<ComposeService> {
        if self.kind != "postgres" {
            return None;
        }
        let name = format!("{}-postgres", d.name.replace('_', "-"));
        let db = m.service.name.clone();
        let url = format!(
            "postgres://{db}:{{password}}@127.0.0.1:{}/{db}",
            self.options.port
        );
        let mut lines = vec![
            format!("# The Postgres of dependency {} (docker-compose.yml). Created by `telltale render`", d.name),
            "# with a random password; git-ignored; kept across renders. Delete it (and the".into(),
            format!("# volume {name}-data) to start afresh."),
            "POSTGRES_PASSWORD={password}".into(),
        ];
        if let Some(SecretRef::Env(var)) = &d.url_from {
            lines.push(
                "# The service's URL: `set -a; . <this file>; set +a` before starting it.".into(),
            );
            lines.push(format!("{var}={url}"));
        }
        Some(ComposeService {
            name: name.clone(),
            image: self.options.image.clone(),
            environment: vec![
                ("POSTGRES_USER".into(), db.clone()),
                ("POSTGRES_DB".into(), db.clone()),
            ],
            secret_file: Some((format!(".{name}.env"), lines)),
            ports: vec![self.options.port],
            volume: Some((format!("{name}-data"), "/var/lib/postgresql/data".into())),
            healthcheck: Some(format!("pg_isready -U {db} -d {db}")),
        })
    }

    fn start(&self, ctx: StartCtx<'_>) -> Result<Started, String> {
        let d = ctx.dependency;
        let (url, system) = match (ctx.target, &self.options.local_sqlite) {
            (Some(u), _) => (u, self.system),
            (None, Some(file)) => {
                let why = crate::model::dependencies::missing(d);
                tracing::warn!(target: "telltale::dependencies", dependency = %d.name, file = %file,
                    "{why}: the local SQLite database stands in for {}", self.kind);
                (format!("sqlite:{file}"), "sqlite")
            }
            (None, None) => return Err(crate::model::dependencies::missing(d)),
        };
        let expected: &[&str] = if system == "sqlite" {
            &["sqlite:"]
        } else {
            &["postgres://", "postgresql://"]
        };
        if !expected.iter().any(|s| url.starts_with(s)) {
            return Err(format!(
                "the URL of a {} dependency starts with {} (got {})",
                self.kind,
                expected.join(" or "),
                shown(&url).split(':').next().unwrap_or("?")
            ));
        }
        let url = if system == "sqlite" && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url
        };
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(self.options.pool)
            .min_connections(0)
            .acquire_timeout(d.timeout.get())
            .test_before_acquire(true)
            .connect_lazy(&url)
            .map_err(|e| format!("cannot use its URL: {}", error_text(&e)))?;
        let (address, namespace) = match reqwest::Url::parse(&url) {
            Ok(u) if system == "postgresql" => (
                Some((
                    u.host_str().unwrap_or("localhost").to_string(),
                    u.port().unwrap_or(5432),
                )),
                Some(u.path().trim_start_matches('/').to_string()).filter(|s| !s.is_empty()),
            ),
            _ => (None, None),
        };
        let inner = Arc::new(SqlClientInner {
            name: d.name.as_str().into(),
            pool,
            system,
            specs: self.specs.clone(),
            names: self.names.clone(),
            telemetry: ctx.telemetry,
            timeout: d.timeout.get(),
            max_rows: self.options.max_rows,
            address,
            namespace,
        });
        let checked = inner.clone();
        let stats = inner.clone();
        Ok(Started {
            client: Arc::new(Sql(inner.clone())),
            check: Arc::new(move || -> CheckFuture {
                let c = checked.clone();
                Box::pin(async move { c.check().await })
            }),
            pool: Some(Arc::new(move || PoolStats {
                size: stats.pool.size(),
                idle: stats.pool.num_idle() as u32,
            })),
            shown: shown(&url),
        })
    }
}

/// The client of a `postgres` or `sqlite` dependency (`Setup::sql`):
/// cheap to clone. Queries run through its declared operations
/// ([`SqlOperation`], which `Setup::sql_operation` resolves in `setup`).
///
/// ```
/// use telltale::sqlx::{self, Row};
/// use telltale::{DependencyError, SqlOperation};
///
/// /// The quantity of order `id`, if there is one (`get_order` is declared
/// /// under the dependency's `options.operations`).
/// async fn quantity(get_order: &SqlOperation, id: i64) -> Result<Option<i64>, DependencyError> {
///     let row = get_order
///         .fetch_optional(sqlx::query("SELECT qty FROM orders WHERE id = $1").bind(id))
///         .await?;
///     Ok(row.map(|r| r.get::<i64, _>("qty")))
/// }
/// ```
#[derive(Clone)]
// Sql and SqlOperation are defined here, not in client.rs, so that their
// type names (in `validate`'s messages) keep their paths.
pub struct Sql(Arc<SqlClientInner>);

/// A declared operation of a database dependency: each call is timed,
/// counted under its name and traced.
#[derive(Clone, Debug)]
pub struct SqlOperation {
    sql: Sql,
    op: usize,
}

/// A boxed future borrowing a connection (for [`SqlOperation::run`]).
pub type ConnFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_has_no_password() {
        let s = shown("postgres://shop:s3cret@db:5432/shop?sslmode=disable");
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("db:5432/shop"), "{s}");
        assert_eq!(shown("sqlite:shop.db?mode=rwc"), "sqlite:shop.db");
    }
}

