//! [`Sql`]'s and [`SqlOperation`]'s calls: a query run within the
//! dependency's timeout on a pooled connection, its error in words, and the
//! call's span and metrics.

use super::super::{Call, DependencyError, Outcome};
use super::{ConnFuture, Operation, Sql, SqlOperation};
use crate::model::dependencies::Telemetry;
use crate::traces::span::Value;
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) struct SqlClientInner {
    pub(super) name: Arc<str>,
    pub(super) pool: AnyPool,
    /// `db.system`: postgresql or sqlite (a local stand-in is sqlite).
    pub(super) system: &'static str,
    pub(super) specs: Vec<Operation>,
    pub(super) names: Vec<String>,
    pub(super) telemetry: Telemetry,
    pub(super) timeout: Duration,
    pub(super) max_rows: u64,
    /// `server.address` and `server.port` (Postgres).
    pub(super) address: Option<(String, u16)>,
    /// `db.namespace`: the database's name.
    pub(super) namespace: Option<String>,
}

impl SqlClientInner {
    pub(super) async fn check(&self) -> Result<(), String> {
        let run = async {
            let mut c = self.pool.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *c).await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            Ok(Err(e)) => Err(error_text(&e)),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

/// An sqlx error in words: the database's message, never a statement's
/// values or the URL.
pub(super) fn error_text(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => format!("the database refused: {}", d.message()),
        sqlx::Error::Io(io) => format!("cannot reach the database: {io}"),
        sqlx::Error::PoolTimedOut => "no connection became free in time".into(),
        sqlx::Error::PoolClosed => "the pool is closed".into(),
        sqlx::Error::RowNotFound => "no row".into(),
        sqlx::Error::Configuration(_) => "its URL is not valid".into(),
        other => {
            let s = other.to_string();
            crate::traces::span::cut(&s, 512).to_string()
        }
    }
}

/// How an sqlx error ended a call.
fn outcome_of(e: &sqlx::Error) -> Outcome {
    match e {
        sqlx::Error::PoolTimedOut => Outcome::Timeout,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => Outcome::Refused,
        _ => Outcome::Error,
    }
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("dependency", &self.0.name)
            .field("system", &self.0.system)
            .finish()
    }
}

impl Sql {
    /// The declared operation `name` (resolve it once, in `setup`).
    pub fn operation(&self, name: &str) -> Result<SqlOperation, String> {
        match self.0.names.iter().position(|n| n == name) {
            Some(op) => Ok(SqlOperation {
                sql: self.clone(),
                op,
            }),
            None => Err(format!(
                "dependency {} declares no operation {name:?} (declared: {})",
                self.0.name,
                self.0.names.join(", ")
            )),
        }
    }

    /// `postgresql` or `sqlite`: the database actually in use (a local
    /// SQLite file may stand in for Postgres), for a dialect's migrations.
    pub fn system(&self) -> &'static str {
        self.0.system
    }

    /// Runs the migrations not yet applied (`sqlx::migrate!()`), at start.
    pub async fn migrate(&self, migrator: &sqlx::migrate::Migrator) -> Result<(), String> {
        migrator.run(&self.0.pool).await.map_err(|e| {
            format!(
                "the migrations of dependency {} failed: {}",
                self.0.name,
                crate::traces::span::cut(&e.to_string(), 512)
            )
        })
    }

    /// The pool itself, for what operations do not cover (not instrumented).
    pub fn pool(&self) -> &AnyPool {
        &self.0.pool
    }
}

/// Counts a waiter until it has a connection (or gives up).
struct Waiting<'a>(&'a Telemetry);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.dec();
    }
}

impl SqlOperation {
    fn begin(&self) -> (Call<'_>, Instant) {
        let inner = &self.sql.0;
        let spec = &inner.specs[self.op];
        let mut call = Call::start(&inner.telemetry, self.op);
        call.attribute("db.system", Value::Str(inner.system.into()));
        call.attribute("db.operation.name", Value::text(&spec.operation));
        if let Some(c) = &spec.collection {
            call.attribute("db.collection.name", Value::text(c));
        }
        if let Some(ns) = &inner.namespace {
            call.attribute("db.namespace", Value::text(ns));
        }
        if let Some((host, port)) = &inner.address {
            call.attribute("server.address", Value::text(host));
            call.attribute("server.port", Value::Int((*port).into()));
        }
        (call, Instant::now() + inner.timeout)
    }

    async fn acquire(&self, deadline: Instant) -> Result<PoolConnection<Any>, (Outcome, String)> {
        let inner = &self.sql.0;
        inner.telemetry.waiting.inc();
        let _w = Waiting(&inner.telemetry);
        within(deadline, inner.timeout, inner.pool.acquire()).await
    }

    fn end<T>(
        &self,
        call: Call<'_>,
        r: Result<T, (Outcome, String)>,
    ) -> Result<T, DependencyError> {
        let inner = &self.sql.0;
        let spec = &inner.specs[self.op];
        let name = match &spec.collection {
            Some(c) => format!("{} {c}", spec.operation),
            None => spec.operation.clone(),
        };
        match r {
            Ok(v) => {
                call.finish(&name, Outcome::Ok, None);
                Ok(v)
            }
            Err((outcome, message)) => {
                call.finish(&name, outcome, Some(message.clone()));
                Err(DependencyError::new(&inner.name, outcome, message))
            }
        }
    }

    /// Runs a statement; the rows it changed.
    pub async fn execute(&self, q: Query<'_, Any, AnyArguments>) -> Result<u64, DependencyError> {
        let (call, deadline) = self.begin();
        let r = async {
            let mut c = self.acquire(deadline).await?;
            within(deadline, self.sql.0.timeout, q.execute(&mut *c))
                .await
                .map(|r: AnyQueryResult| r.rows_affected())
        }
        .await;
        self.end(call, r)
    }

    /// Runs a query that returns exactly one row.
    pub async fn fetch_one(
        &self,
        q: Query<'_, Any, AnyArguments>,
    ) -> Result<AnyRow, DependencyError> {
        let (call, deadline) = self.begin();
        let r = async {
            let mut c = self.acquire(deadline).await?;
            within(deadline, self.sql.0.timeout, q.fetch_one(&mut *c)).await
        }
        .await;
        self.end(call, r)
    }

    /// Runs a query that returns at most one row.
    pub async fn fetch_optional(
        &self,
        q: Query<'_, Any, AnyArguments>,
    ) -> Result<Option<AnyRow>, DependencyError> {
        let (call, deadline) = self.begin();
        let r = async {
            let mut c = self.acquire(deadline).await?;
            within(deadline, self.sql.0.timeout, q.fetch_optional(&mut *c)).await
        }
        .await;
        self.end(call, r)
    }

    /// Runs a query and returns its rows: at most `options.max_rows`, more
    /// fail the call.
    pub async fn fetch_all(
        &self,
        q: Query<'_, Any, AnyArguments>,
    ) -> Result<Vec<AnyRow>, DependencyError> {
        use futures_util::TryStreamExt;
        let (call, deadline) = self.begin();
        let max = self.sql.0.max_rows;
        let r = async {
            let mut c = self.acquire(deadline).await?;
            let read = async {
                let mut rows: Vec<AnyRow> = Vec::new();
                let mut stream = q.fetch(&mut *c);
                while let Some(row) = stream.try_next().await? {
                    if rows.len() as u64 == max {
                        return Ok(Err(format!(
                            "the query returned more than {max} rows (options.max_rows)"
                        )));
                    }
                    rows.push(row);
                }
                Ok::<_, sqlx::Error>(Ok(rows))
            };
            match within(deadline, self.sql.0.timeout, read).await? {
                Ok(rows) => Ok(rows),
                Err(too_many) => Err((Outcome::Error, too_many)),
            }
        }
        .await;
        self.end(call, r)
    }

    /// Runs `f` on a pooled connection (a transaction, several statements),
    /// timed and traced as this operation.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DependencyError>
    where
        F: for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, T>,
    {
        let (call, deadline) = self.begin();
        let r = async {
            let mut c = self.acquire(deadline).await?;
            within(deadline, self.sql.0.timeout, f(&mut c)).await
        }
        .await;
        self.end(call, r)
    }
}

/// `fut` within what is left until `deadline`, its error classified.
async fn within<T, E: Into<sqlx::Error>>(
    deadline: Instant,
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, (Outcome, String)> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, fut).await {
        Err(_) => Err((Outcome::Timeout, format!("no answer within {timeout:?}"))),
        Ok(Err(e)) => {
            let e = e.into();
            Err((outcome_of(&e), error_text(&e)))
        }
        Ok(Ok(v)) => Ok(v),
    }
}
