//! `telltale verify --prometheus URL [--loki URL]`: runs every panel query
//! and every rule expression of the manifest against a live Prometheus (and
//! the log panels against Loki), with the dashboard's variables filled in
//! for this service, and says which return data.
//!
//! ```text
//! Model ─► queries (panels, rules; variables substituted) ─► run each ─► diagnose the empty ─► table / JSON
//! ```
//!
//! For a query that returns nothing it names the likeliest reason: the job
//! is not scraped by that Prometheus, a metric is absent, or its labels do
//! not match. Exit status: 0 when every panel has data; 1 when a panel is
//! empty or a query fails; 2 when Prometheus (or Loki) cannot be reached.

use crate::model::lint::SCRAPE_SERIES;
use crate::model::{promql, Model};
use crate::render::rules;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value as Json};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub prometheus: String,
    pub loki: Option<String>,
    pub json: bool,
    pub timeout: Duration,
}

/// Where a query comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Panel,
    Rule,
}

/// One query to run.
#[derive(Debug, Clone)]
pub struct Query {
    pub kind: Kind,
    /// The panel's title, or the rule's name.
    pub name: String,
    /// `prometheus` or `loki`.
    pub backend: &'static str,
    /// As it will be sent (variables substituted).
    pub expr: String,
}

/// What a query gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Data(usize),
    Empty(String),
    Error(String),
}

/// Grafana's variables, as the dashboard would fill them for this service.
pub fn substitute(model: &Model, expr: &str) -> String {
    let m = &model.manifest;
    let scrape = promql::parse_duration(&m.stack.scrape_interval).unwrap_or(15);
    let rate = format!("{}s", (4 * scrape).max(1));
    let job = regex_escape(crate::render::stack::service_job(m));
    expr.replace("$__rate_interval", &rate)
        .replace("$__range", "1h")
        .replace("$__auto", &rate)
        .replace("$__interval", &format!("{scrape}s"))
        .replace("${job}", &job)
        .replace("${instance}", ".+")
        .replace("$job", &job)
        .replace("$instance", ".+")
}

/// `s` as a RE2 literal (the dashboard's `job` variable is a regex match).
fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// Every query of the manifest: panels (Prometheus, and Loki when a Loki
/// URL is given), then every recording and alerting rule.
pub fn queries(model: &Model, with_loki: bool) -> Result<Vec<Query>, String> {
    let m = &model.manifest;
    let mut out = Vec::new();
    for p in &m.dashboard.panels {
        let backend = match p.datasource.as_str() {
            "prometheus" => "prometheus",
            "loki" if with_loki => "loki",
            _ => continue,
        };
        for t in &p.targets {
            out.push(Query {
                kind: Kind::Panel,
                name: p.title.clone(),
                backend,
                expr: substitute(model, &t.expr),
            });
        }
    }
    for g in rules::build(m)?.groups {
        for r in g.rules {
            let name = r.record.or(r.alert).unwrap_or_default();
            out.push(Query {
                kind: Kind::Rule,
                name,
                backend: "prometheus",
                expr: r.expr,
            });
        }
    }
    Ok(out)
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A client of one Prometheus or Loki.
struct Api {
    http: reqwest::Client,
    base: String,
}

/// A failure to reach the server at all (exit 2), or an answer that is an
/// error (the query's own fault).
enum Failure {
    Unreachable(String),
    Query(String),
}

impl Api {
    async fn get(&self, path: &str) -> Result<Json, Failure> {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("{url}: {e}")))?;
        let status = r.status();
        let body: Json = r.json().await.map_err(|e| {
            Failure::Unreachable(format!("{url}: HTTP {status}, not a JSON answer: {e}"))
        })?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(Failure::Query(
                body["error"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {status}"), String::from),
            ))
        }
    }

    /// Series returned by a Prometheus instant query.
    async fn instant(&self, expr: &str) -> Result<usize, Failure> {
        let data = self
            .get(&format!("/api/v1/query?query={}", encode(expr)))
            .await?;
        Ok(data["result"].as_array().map_or(0, Vec::len))
    }

    /// Streams or series a Loki query returns over the last hour.
    async fn loki(&self, expr: &str) -> Result<usize, Failure> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let start = now.saturating_sub(3600 * 1_000_000_000);
        let data = self
            .get(&format!(
                "/loki/api/v1/query_range?query={}&start={start}&end={now}&limit=10",
                encode(expr)
            ))
            .await?;
        Ok(data["result"].as_array().map_or(0, Vec::len))
    }
}

/// Why `expr` returned nothing, checked against Prometheus in order: the
/// job is not scraped; a metric is absent; a metric exists but not for the
/// job; else a label matcher or aggregation selects nothing.
async fn diagnose(api: &Api, job: &str, expr: &str) -> Result<String, Failure> {
    let job_sel = format!("job=\"{}\"", job.replace('\\', "\\\\").replace('"', "\\\""));
    if api.instant(&format!("up{{{job_sel}}}")).await? == 0 {
        return Ok(format!(
            "job not scraped: this Prometheus has no up{{{job_sel}}} (check its scrape config's job_name)"
        ));
    }
    let mut metrics: Vec<String> = promql::selectors(expr)
        .into_iter()
        .map(|s| s.metric)
        .filter(|n| !n.contains(':') && !SCRAPE_SERIES.contains(&n.as_str()))
        .collect();
    metrics.dedup();
    for name in &metrics {
        if api
            .instant(&format!("count({{__name__=\"{name}\"}})"))
            .await?
            == 0
        {
            return Ok(format!("metric absent: no series of {name} at all"));
        }
        if api
            .instant(&format!("count({{__name__=\"{name}\", {job_sel}}})"))
            .await?
            == 0
        {
            return Ok(format!(
                "label mismatch: {name} has series, but none with {job_sel}"
            ));
        }
    }
    Ok(if metrics.is_empty() {
        "no series match (the expression selects only recorded or synthetic series)".into()
    } else {
        format!(
            "label mismatch: {} exist for the job, but the query's label matchers select none",
            metrics.join(", ")
        )
    })
}

/// One result row.
pub struct Row {
    pub query: Query,
    pub outcome: Outcome,
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("telltale verify: {msg}");
    ExitCode::from(2)
}

/// Runs every query and prints the table (or JSON); the exit code says
/// whether every panel has data.
pub fn run(model: &Model, o: Options) -> ExitCode {
    let base = |u: &str, flag: &str| -> Result<String, String> {
        match reqwest::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => {
                Ok(u.trim_end_matches('/').to_string())
            }
            Ok(_) => Err(format!("{flag} {u:?} must be an http(s):// URL")),
            Err(e) => Err(format!("{flag} {u:?} is not a URL: {e}")),
        }
    };
    let prom = match base(&o.prometheus, "--prometheus") {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let loki = match o.loki.as_deref().map(|l| base(l, "--loki")).transpose() {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let queries = match queries(model, loki.is_some()) {
        Ok(q) => q,
        Err(e) => return fail(&e),
    };
    let http = match reqwest::Client::builder().timeout(o.timeout).build() {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot build an HTTP client: {e}")),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let prom = Api {
        http: http.clone(),
        base: prom,
    };
    let loki = loki.map(|base| Api { http, base });
    let job = crate::render::stack::service_job(&model.manifest).to_string();
    let bar = if std::io::stderr().is_terminal() && !o.json {
        let b = ProgressBar::new(queries.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let result = rt.block_on(async {
        // Reachability first: exit 2 says "cannot check", not "broken".
        prom.get("/api/v1/status/buildinfo")
            .await
            .map_err(|e| match e {
                Failure::Unreachable(m) | Failure::Query(m) => {
                    format!("cannot reach Prometheus: {m}")
                }
            })?;
        if let Some(l) = &loki {
            let r = l.http.get(format!("{}/ready", l.base)).send().await;
            if !r.as_ref().is_ok_and(|r| r.status().is_success()) {
                return Err(format!("cannot reach Loki at {} (GET /ready)", l.base));
            }
        }
        let mut rows = Vec::new();
        for q in queries {
            bar.set_message(q.name.clone());
            let api = if q.backend == "loki" {
                loki.as_ref()
            } else {
                Some(&prom)
            };
            let Some(api) = api else { continue };
            let got = if q.backend == "loki" {
                api.loki(&q.expr).await
            } else {
                api.instant(&q.expr).await
            };
            let outcome = match got {
                Ok(0) if q.backend == "prometheus" => match diagnose(&prom, &job, &q.expr).await {
                    Ok(why) => Outcome::Empty(why),
                    Err(Failure::Query(e)) => Outcome::Empty(format!("(diagnosis failed: {e})")),
                    Err(Failure::Unreachable(e)) => return Err(format!("lost Prometheus: {e}")),
                },
                Ok(0) => Outcome::Empty("no log lines in the last hour".into()),
                Ok(n) => Outcome::Data(n),
                Err(Failure::Query(e)) => Outcome::Error(e),
                Err(Failure::Unreachable(e)) => return Err(format!("lost {}: {e}", q.backend)),
            };
            rows.push(Row { query: q, outcome });
            bar.inc(1);
        }
        Ok(rows)
    });
    bar.finish_and_clear();
    let rows = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let failed = rows.iter().any(|r| match &r.outcome {
        Outcome::Error(_) => true,
        Outcome::Empty(_) => r.query.kind == Kind::Panel,
        Outcome::Data(_) => false,
    });
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_report(&rows, failed)).unwrap_or_default()
        );
    } else {
        print!("{}", table(&rows, &o.prometheus));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Panel => "panel",
        Kind::Rule => "rule",
    }
}

/// The machine-readable report.
pub fn json_report(rows: &[Row], failed: bool) -> Json {
    let items: Vec<Json> = rows
        .iter()
        .map(|r| {
            let (result, series, reason) = match &r.outcome {
                Outcome::Data(n) => ("data", *n, None),
                Outcome::Empty(why) => ("empty", 0, Some(why.clone())),
                Outcome::Error(e) => ("error", 0, Some(e.clone())),
            };
            json!({
                "kind": kind_name(r.query.kind),
                "name": r.query.name,
                "backend": r.query.backend,
                "query": r.query.expr,
                "result": result,
                "series": series,
                "reason": reason,
            })
        })
        .collect();
    json!({ "passed": !failed, "queries": items })
}

/// The table: one row per query, then a summary line.
pub fn table(rows: &[Row], prometheus: &str) -> String {
    let mut out = format!("verify against {prometheus}\n\n");
    let width = rows
        .iter()
        .map(|r| r.query.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    out.push_str(&format!(
        "{:<5}  {:<width$}  {:<6}  {:>6}  reason\n",
        "kind", "name", "result", "series"
    ));
    let (mut data, mut empty, mut errors) = (0, 0, 0);
    for r in rows {
        let name: String = r.query.name.chars().take(width).collect();
        let (result, series, reason) = match &r.outcome {
            Outcome::Data(n) => {
                data += 1;
                ("data", n.to_string(), String::new())
            }
            Outcome::Empty(why) => {
                empty += 1;
                ("empty", "0".into(), why.clone())
            }
            Outcome::Error(e) => {
                errors += 1;
                ("error", "-".into(), e.clone())
            }
        };
        out.push_str(&format!(
            "{:<5}  {name:<width$}  {result:<6}  {series:>6}  {reason}\n",
            kind_name(r.query.kind)
        ));
    }
    let empty_panels = rows
        .iter()
        .filter(|r| r.query.kind == Kind::Panel && matches!(r.outcome, Outcome::Empty(_)))
        .count();
    out.push_str(&format!(
        "\n{} queries: {data} with data, {empty} empty ({empty_panels} of them panels), {errors} errors\n",
        rows.len()
    ));
    out
}
