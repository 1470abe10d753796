//! `telltale verify --prometheus URL [--loki URL]`: runs every panel query
//! and every rule expression of the manifest against a live Prometheus (and
//! the log panels against Loki), with the dashboard's variables filled in
//! for this service, and says which return data. For a panel that shows
//! exemplars (its rendered target has `exemplar: true`, or it reads a
//! histogram's `_bucket`), it also asks `/api/v1/query_exemplars` over the
//! last hour and counts what came back: a report, never a failure
//! (exemplars need sampled traces, which a service may not have on).
//!
//! ```text
//! Model ─► queries (panels, rules; variables substituted) ─► run each ─► diagnose the empty ─► table / JSON
//!                                              alert states (/api/v1/rules) ─┘
//! ```
//!
//! For a query that returns nothing it names the likeliest reason: the job
//! is not scraped by that Prometheus, a metric is absent, its labels do not
//! match, or (for a comparison) the condition does not hold. Each alerting
//! rule shows its state (firing, pending, inactive). Loki panels without
//! `--loki`, and JSON-datasource panels, are listed as skipped. Every
//! answer is read with a bound ([`crate::fetch::VERIFY_BODY_CAP`]) and every
//! server text printed without control characters. Exit status: 0 when
//! every panel has data (and, with `--fail-on-firing`, no alert fires); 1
//! when a panel is empty, a query fails (or an alert fires, when asked);
//! 2 when Prometheus (or Loki) cannot be reached or read.

mod api;
pub mod diagnose;
pub mod report;

use crate::model::Model;
use crate::render::rules;
use crate::term::{errln, out, outln};
use api::{Api, Failure, RuleStates};
use indicatif::{ProgressBar, ProgressStyle};
pub use report::{json_report, table};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub prometheus: String,
    pub loki: Option<String>,
    pub json: bool,
    pub timeout: Duration,
    /// A firing alert fails the run (exit 1).
    pub fail_on_firing: bool,
}

/// Where a query comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuerySource {
    Panel,
    /// A recording rule.
    Record,
    /// An alerting rule.
    Alert,
}

/// One query to run.
#[derive(Debug, Clone)]
pub struct Query {
    pub kind: QuerySource,
    /// The panel's title, or the rule's name (with the labels that tell
    /// apart rules of the same name, e.g. `{slo="latency"}`).
    pub name: String,
    /// The rule's group (how Prometheus names its alerts' states).
    pub group: Option<String>,
    /// The alert's or recording rule's own name (`name` without labels).
    pub rule: Option<String>,
    /// The datasource: `prometheus`, `loki` or `json`.
    pub backend: String,
    /// As it will be sent (variables substituted).
    pub expr: String,
    /// A panel that shows exemplars: verify counts them.
    pub exemplars: bool,
}

/// What `/api/v1/query_exemplars` gave for a panel that shows exemplars.
#[derive(Debug, Clone, PartialEq)]
pub enum Exemplars {
    /// How many exemplars (over every series) in the last hour.
    Found(usize),
    /// The query failed.
    Error(String),
}

/// An alerting rule's state, as Prometheus reports it (ordered by urgency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn parse(s: &str) -> Option<AlertState> {
        match s {
            "inactive" => Some(AlertState::Inactive),
            "pending" => Some(AlertState::Pending),
            "firing" => Some(AlertState::Firing),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// What a query gave.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutcome {
    /// Series returned (a panel or recording rule).
    Data(usize),
    /// Nothing, with the likeliest reason.
    Empty(String),
    /// An alerting rule: its state, the series its expression returns, and
    /// why it is inactive (or how its state was found).
    Alert {
        state: AlertState,
        series: usize,
        reason: Option<String>,
    },
    /// Not checked, and why (a Loki panel without `--loki`, a JSON panel).
    Skipped(String),
    /// The server answered with an error.
    Error(String),
}

/// A duration in seconds as PromQL writes it (`60s`), or in milliseconds
/// when it is not whole (`1500ms`).
fn seconds(d: std::time::Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// Grafana's variables, as the dashboard would fill them for this service.
pub fn substitute(model: &Model, expr: &str) -> String {
    let m = &model.manifest;
    let scrape = m.stack.scrape_interval.get();
    let rate = seconds((4 * scrape).max(std::time::Duration::from_secs(1)));
    let job = regex_escape(crate::render::stack::service_job(m));
    expr.replace("$__rate_interval", &rate)
        .replace("$__range", "1h")
        .replace("$__auto", &rate)
        .replace("$__interval", &seconds(scrape))
        .replace("${job}", &job)
        .replace("${instance}", ".+")
        .replace("$job", &job)
        .replace("$instance", ".+")
}

/// `s` as a RE2 literal (the dashboard's `job` variable is a regex match)
/// inside a PromQL double-quoted string: `regex::escape` (each escape is of
/// punctuation, which RE2 reads as itself), then the string's own escapes.
fn regex_escape(s: &str) -> String {
    let quoted = crate::render::escape::promql_string(&regex::escape(s));
    quoted[1..quoted.len() - 1].to_string()
}

/// Every query of the manifest: every panel's (Prometheus, Loki and JSON
/// datasource alike; [`run`] says which it skips; the queries of one panel
/// told apart by their `refId`), then every recording and alerting rule,
/// rules of one name told apart by their labels.
pub fn queries(model: &Model) -> Result<Vec<Query>, String> {
    let m = &model.manifest;
    let mut out = Vec::new();
    let marked = exemplar_targets(model);
    for (i, p) in m.dashboard.panels.iter().enumerate() {
        for (j, t) in p.targets.iter().enumerate() {
            let name = if p.targets.len() > 1 {
                format!(
                    "{} [{}]",
                    p.title,
                    crate::render::targets::grafana_dashboard::ref_id(j)
                )
            } else {
                p.title.clone()
            };
            out.push(Query {
                kind: QuerySource::Panel,
                name,
                group: None,
                rule: None,
                backend: p.datasource.clone(),
                expr: substitute(model, &t.expr),
                exemplars: p.datasource == "prometheus"
                    && (marked.contains(&(i, j)) || reads_buckets(model, &t.expr)),
            });
        }
    }
    let groups = rules::build(model)?.groups;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in groups.iter().flat_map(|g| &g.rules) {
        let name = r.record.as_ref().or(r.alert.as_ref());
        *seen.entry(name.cloned().unwrap_or_default()).or_default() += 1;
    }
    for g in groups {
        for r in g.rules {
            let kind = if r.alert.is_some() {
                QuerySource::Alert
            } else {
                QuerySource::Record
            };
            let rule = r.record.or(r.alert).unwrap_or_default();
            let name = if seen.get(&rule).copied().unwrap_or(0) > 1 {
                format!("{rule}{}", label_set(&r.labels))
            } else {
                rule.clone()
            };
            out.push(Query {
                kind,
                name,
                group: Some(g.name.clone()),
                rule: Some(rule),
                backend: "prometheus".into(),
                expr: r.expr,
                exemplars: false,
            });
        }
    }
    Ok(out)
}

/// The (panel, target) indices whose target the rendered dashboard marks
/// `"exemplar": true` (none if it cannot be rendered: `render` reports why).
fn exemplar_targets(model: &Model) -> std::collections::HashSet<(usize, usize)> {
    use crate::render::targets::grafana_dashboard::render_json;
    let dash = crate::render::Ctx::new(model, String::new().into())
        .and_then(|ctx| render_json(&ctx))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    let mut out = std::collections::HashSet::new();
    let panels = dash.as_ref().and_then(|d| d["panels"].as_array());
    for (i, p) in panels.into_iter().flatten().enumerate() {
        for (j, t) in p["targets"].as_array().into_iter().flatten().enumerate() {
            if t["exemplar"] == true {
                out.insert((i, j));
            }
        }
    }
    out
}

/// Whether `expr` selects the `_bucket` series of a declared histogram.
fn reads_buckets(model: &Model, expr: &str) -> bool {
    let histograms: Vec<&str> = (model.manifest.metrics.iter())
        .filter(|m| m.kind == crate::manifest::MetricType::Histogram)
        .map(|m| m.name.as_str())
        .collect();
    crate::model::promql::selectors(expr)
        .iter()
        .any(|s| (s.metric.strip_suffix("_bucket")).is_some_and(|h| histograms.contains(&h)))
}

/// `{slo="latency"}`: the labels a rule sets, as PromQL writes them.
fn label_set(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::render::escape::promql_string(v)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// One result row.
pub struct Row {
    pub query: Query,
    pub outcome: QueryOutcome,
    /// For a panel that shows exemplars: what Prometheus has of them.
    pub exemplars: Option<Exemplars>,
}

fn fail(msg: &str) -> ExitCode {
    errln!("telltale verify: {}", crate::fetch::printable(msg));
    ExitCode::from(2)
}

/// `u` as a base URL (http or https, with a host), without a trailing `/`.
fn base_url(u: &str, flag: &str) -> Result<String, String> {
    match reqwest::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => {
            Ok(u.trim_end_matches('/').to_string())
        }
        Ok(_) => Err(format!("{flag} {u:?} must be an http(s):// URL")),
        Err(e) => Err(format!("{flag} {u:?} is not a URL: {e}")),
    }
}

/// What every query is checked against.
struct VerifyCtx {
    prom: Api,
    loki: Option<Api>,
    job: String,
    states: RuleStates,
}

/// Why a panel of `backend` is not checked, or `None` when it is.
fn skipped(backend: &str, with_loki: bool) -> Option<String> {
    match backend {
        "prometheus" => None,
        "loki" if with_loki => None,
        "loki" => Some("Loki panel: not checked (pass --loki URL to check it)".into()),
        "json" => Some(
            "JSON datasource panel: served by the service itself, not checked by verify".into(),
        ),
        other => Some(format!("{other} panel: not checked")),
    }
}

/// The outcome of one query; `Err` when the server was lost (exit 2).
async fn check(ctx: &VerifyCtx, q: &Query) -> Result<QueryOutcome, String> {
    if let Some(why) = skipped(&q.backend, ctx.loki.is_some()) {
        return Ok(QueryOutcome::Skipped(why));
    }
    let lost = |e: String| format!("lost {}: {e}", q.backend);
    if q.backend == "loki" {
        let Some(loki) = &ctx.loki else {
            return Ok(QueryOutcome::Skipped("Loki panel: not checked".into()));
        };
        return match loki.loki(&q.expr).await {
            Ok(0) => Ok(QueryOutcome::Empty("no log lines in the last hour".into())),
            Ok(n) => Ok(QueryOutcome::Data(n)),
            Err(Failure::Query(e) | Failure::TooLarge(e)) => Ok(QueryOutcome::Error(e)),
            Err(Failure::Unreachable(e)) => Err(lost(e)),
        };
    }
    let series = match ctx.prom.instant(&q.expr).await {
        Ok(n) => n,
        Err(Failure::Query(e) | Failure::TooLarge(e)) => return Ok(QueryOutcome::Error(e)),
        Err(Failure::Unreachable(e)) => return Err(lost(e)),
    };
    let why_empty = if series == 0 {
        match diagnose::diagnose(&ctx.prom, &ctx.job, &q.expr).await {
            Ok(why) => Some(why),
            Err(Failure::Query(e) | Failure::TooLarge(e)) => {
                Some(format!("(diagnosis failed: {e})"))
            }
            Err(Failure::Unreachable(e)) => return Err(lost(e)),
        }
    } else {
        None
    };
    Ok(match q.kind {
        QuerySource::Alert => alert_outcome(ctx, q, series, why_empty),
        _ => why_empty.map_or(QueryOutcome::Data(series), QueryOutcome::Empty),
    })
}

/// An alert's row: its state as Prometheus has it, or (not loaded there)
/// as its expression says.
fn alert_outcome(
    ctx: &VerifyCtx,
    q: &Query,
    series: usize,
    why_empty: Option<String>,
) -> QueryOutcome {
    let name = q.rule.as_deref().unwrap_or(&q.name);
    match ctx.states.get(q.group.as_deref(), name) {
        Some(state) => QueryOutcome::Alert {
            state,
            series,
            reason: why_empty.filter(|_| state == AlertState::Inactive),
        },
        None => {
            let state = if series > 0 {
                AlertState::Firing
            } else {
                AlertState::Inactive
            };
            let note =
                "not loaded in this Prometheus: state from its expression, `for` not applied";
            QueryOutcome::Alert {
                state,
                series,
                reason: Some(match why_empty {
                    Some(why) => format!("{why} ({note})"),
                    None => note.to_string(),
                }),
            }
        }
    }
}

/// Whether the run failed: an empty panel, a query error, or (when asked)
/// a firing alert.
fn failed(rows: &[Row], fail_on_firing: bool) -> bool {
    rows.iter().any(|r| match &r.outcome {
        QueryOutcome::Error(_) => true,
        QueryOutcome::Empty(_) => r.query.kind == QuerySource::Panel,
        QueryOutcome::Alert { state, .. } => fail_on_firing && *state == AlertState::Firing,
        QueryOutcome::Data(_) | QueryOutcome::Skipped(_) => false,
    })
}

fn progress(n: usize, json: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() || json {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(n as u64);
    b.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Reachability first (exit 2 says "cannot check", not "broken"), then
/// every query in order.
async fn check_all(
    ctx: &mut VerifyCtx,
    queries: Vec<Query>,
    bar: &ProgressBar,
) -> Result<Vec<Row>, String> {
    ctx.prom
        .get("/api/v1/status/buildinfo", &[])
        .await
        .map_err(|e| match e {
            Failure::Unreachable(m) | Failure::Query(m) => {
                format!("cannot reach Prometheus: {m}")
            }
            Failure::TooLarge(m) => format!("cannot read Prometheus's answer: {m}"),
        })?;
    if let Some(l) = &ctx.loki {
        let r = l.http.get(format!("{}/ready", l.base)).send().await;
        if !r.as_ref().is_ok_and(|r| r.status().is_success()) {
            return Err(format!("cannot reach Loki at {} (GET /ready)", l.base));
        }
    }
    ctx.states = ctx.prom.rule_states().await.map_err(|e| match e {
        Failure::Unreachable(m) | Failure::Query(m) | Failure::TooLarge(m) => {
            format!("cannot read Prometheus's alert states: {m}")
        }
    })?;
    let mut rows = Vec::new();
    for q in queries {
        bar.set_message(q.name.clone());
        let outcome = check(ctx, &q).await?;
        let exemplars = if q.exemplars && skipped(&q.backend, ctx.loki.is_some()).is_none() {
            Some(match ctx.prom.exemplars(&q.expr).await {
                Ok(n) => Exemplars::Found(n),
                Err(Failure::Query(e) | Failure::TooLarge(e)) => Exemplars::Error(e),
                Err(Failure::Unreachable(e)) => return Err(format!("lost prometheus: {e}")),
            })
        } else {
            None
        };
        rows.push(Row {
            query: q,
            outcome,
            exemplars,
        });
        bar.inc(1);
    }
    Ok(rows)
}

/// Runs every query and prints the table (or JSON); the exit code says
/// whether every panel has data (and, if asked, no alert fires).
pub fn run(model: &Model, o: VerifyOptions) -> ExitCode {
    let prom = match base_url(&o.prometheus, "--prometheus") {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let loki = match o.loki.as_deref().map(|l| base_url(l, "--loki")).transpose() {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let queries = match queries(model) {
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
    let mut ctx = VerifyCtx {
        prom: Api {
            http: http.clone(),
            base: prom,
        },
        loki: loki.map(|base| Api { http, base }),
        job: crate::render::stack::service_job(&model.manifest).to_string(),
        states: RuleStates::default(),
    };
    let bar = progress(queries.len(), o.json);
    let result = rt.block_on(check_all(&mut ctx, queries, &bar));
    bar.finish_and_clear();
    let rows = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let failed = failed(&rows, o.fail_on_firing);
    if o.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json_report(&rows, failed)).unwrap_or_default()
        );
    } else {
        out!("{}", table(&rows, &o.prometheus));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use crate::render::targets::grafana_dashboard::ref_id;

    #[test]
    fn the_job_matches_itself_and_nothing_else() {
        for job in [
            "shop", "a.b-c", "x|y", "v(2)+[3]", "*^$?{}", "a\\b", "q\"t", "#&~",
        ] {
            let expr = format!("up{{job=~\"{}\"}}", super::regex_escape(job));
            let parsed =
                promql_parser::parser::parse(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let promql_parser::parser::Expr::VectorSelector(v) = parsed else {
                panic!("{expr} is not one selector");
            };
            let m = v.matchers.find_matchers("job");
            assert_eq!(m.len(), 1, "{expr}");
            assert!(m[0].is_match(job), "{expr}");
            assert!(!m[0].is_match(&format!("{job}x")), "{expr}");
            assert!(!m[0].is_match("ab"), "{expr}");
        }
    }

    #[test]
    fn ref_ids_are_the_dashboards() {
        assert_eq!(
            [0, 1, 25, 26, 27].map(ref_id),
            ["A", "B", "Z", "AA", "AB"].map(String::from)
        );
    }
}
