//! `telltale chaos`: a seeded mix of good and bad requests against a
//! running server, with a progress bar and a report.
//!
//! ```text
//! Model ─► plan.rs (deterministic mix, expected statuses) ─► send (N workers) ─► report.rs
//! ```
//!
//! Every response body is read and dropped chunk by chunk, at most
//! [`MAX_BODY_BYTES`] of it: past that the request failed (`200+error`,
//! the error naming the URL), so a target sending endless bodies costs no
//! memory. The target's `/openapi.json` is read up to [`MAX_OPENAPI_BYTES`].
//!
//! `--header 'Name: value'` ([`headers`]) goes on every request; for a
//! manifest with `auth:`, the plan says which requests leave the
//! credential headers out and must be 401s.
//!
//! Exit status: 0 when every good request got a 2xx and every bad one its
//! expected status; 1 otherwise; 2 when the run could not start or the
//! target became unreachable.

pub mod headers;
pub mod plan;
pub mod report;

use crate::fetch::{drain_capped, printable, read_capped};
use crate::manifest::HttpMethod;
use crate::model::Model;
use crate::term::{errln, out, outln};
use indicatif::{ProgressBar, ProgressStyle};
use plan::Planned;
use report::{Meta, Report, RequestOutcome};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Base URL, e.g. `http://127.0.0.1:8001`; `None`: the manifest's port on loopback.
    pub target: Option<String>,
    pub requests: usize,
    pub concurrency: usize,
    pub bad_ratio: f64,
    /// `None`: drawn from the clock (and printed, so the run can be repeated).
    pub seed: Option<u64>,
    pub json: bool,
    pub timeout: Duration,
    /// The manifest was named with `--manifest`; otherwise the target's own
    /// `/openapi.json` must list the same operations as the manifest used.
    pub manifest_given: bool,
    /// Sustained traffic: requests per second (the `requests` are then
    /// spread over `requests / rate` seconds rather than sent at once).
    pub rate: Option<f64>,
    /// `--header 'Name: value'`s as given (references not yet substituted).
    pub headers: Vec<String>,
}

/// Most bytes of one response body chaos reads (16 MiB); past it the
/// request is a failure naming the URL, and reading stops.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Most bytes of the target's `/openapi.json` read to compare its API (64 MiB).
pub const MAX_OPENAPI_BYTES: usize = crate::fetch::VERIFY_BODY_CAP;

/// Most requests per second `--rate` takes.
pub const MAX_RATE: f64 = 10_000.0;

const MAX_REQUESTS: usize = 1_000_000;
const MAX_CONCURRENCY: usize = 256;

fn check(o: &ChaosOptions) -> Result<(), String> {
    if !(1..=MAX_REQUESTS).contains(&o.requests) {
        return Err(format!("--requests must be from 1 to {MAX_REQUESTS}"));
    }
    if !(1..=MAX_CONCURRENCY).contains(&o.concurrency) {
        return Err(format!("--concurrency must be from 1 to {MAX_CONCURRENCY}"));
    }
    if !(0.0..=1.0).contains(&o.bad_ratio) {
        return Err("--bad-ratio must be from 0 to 1".into());
    }
    if o.timeout.is_zero() {
        return Err("--timeout must be positive".into());
    }
    if let Some(r) = o.rate {
        if !(r > 0.0 && r <= MAX_RATE) {
            return Err(format!(
                "--rate must be above 0 and at most {MAX_RATE} requests/s"
            ));
        }
    }
    Ok(())
}

/// Runs chaos and prints the report; the exit code says whether it passed.
pub fn run(model: &Model, o: ChaosOptions) -> ExitCode {
    let fail = |msg: String| {
        errln!("telltale chaos: {msg}");
        ExitCode::from(2)
    };
    if let Err(e) = check(&o) {
        return fail(e);
    }
    let headers = match headers::parse_all(&o.headers) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let names: Vec<String> = headers.iter().map(|h| h.name.to_string()).collect();
    let (target, base) = match target(model, &o) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let seed = o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let planned = match plan::plan(model, o.requests, o.bad_ratio, seed, &names) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(e),
    };
    let credential_headers = plan::credential_headers(model);
    let sent_headers = Arc::new(
        headers
            .into_iter()
            .map(|h| {
                let credential = credential_headers.iter().any(|c| c == h.name.as_str());
                (h, credential)
            })
            .collect::<Vec<_>>(),
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.concurrency.min(4))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let started = Instant::now();
    let host = base.host_str().unwrap_or("127.0.0.1").to_string();
    let port = base.port_or_known_default().unwrap_or(80);
    if let Err(e) = rt.block_on(preflight(&host, port)) {
        return fail(format!(
            "cannot reach {target} ({e}); is the server running? (telltale serve)"
        ));
    }
    if !o.manifest_given {
        if let Err(e) = rt.block_on(same_api(model, &target, o.timeout)) {
            return fail(e);
        }
    }
    let unauthenticated = plan::unauthenticated(model, &names);
    if !unauthenticated.is_empty() {
        let wanted = plan::wanted_headers(model, &names);
        errln!(
            "telltale chaos: note: {}",
            unauthenticated_note(&unauthenticated, &wanted, &names)
        );
    }
    let (outcomes, aborted) = rt.block_on(send_all(planned.clone(), sent_headers, &target, &o));
    let meta = Meta {
        target: target.clone(),
        seed,
        concurrency: o.concurrency,
        bad_ratio: o.bad_ratio,
        planned: planned.len(),
        elapsed: started.elapsed(),
        aborted: aborted.clone(),
        headers: names,
    };
    let report = Report::build(&planned, &outcomes, meta);
    print_report(&report, o.json);
    match (aborted, report.passed()) {
        (Some(why), _) => {
            errln!("telltale chaos: stopped early: {why}");
            ExitCode::from(2)
        }
        (None, true) => ExitCode::SUCCESS,
        (None, false) => ExitCode::FAILURE,
    }
}

/// The server chaos calls (`--target`, or the manifest's port on this
/// host), without a trailing `/`, and parsed.
fn target(model: &Model, o: &ChaosOptions) -> Result<(String, reqwest::Url), String> {
    let target = o
        .target
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", model.manifest.service.port));
    let target = target.trim_end_matches('/').to_string();
    match reqwest::Url::parse(&target) {
        Ok(u) if u.scheme() == "http" && u.host_str().is_some() => Ok((target, u)),
        Ok(_) => Err(format!("--target {target:?} must be an http:// URL")),
        Err(e) => Err(format!("--target {target:?} is not a URL: {e}")),
    }
}

/// Prints the report, as JSON or as text.
fn print_report(report: &Report, json: bool) {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report.json()).unwrap_or_default()
        );
    } else {
        out!("{}", report.text());
    }
}

/// What chaos says when protected endpoints will be called without a
/// credential (`eps`: their `METHOD path`; `wanted`: the headers that
/// would carry one; `names`: the `--header` names given).
fn unauthenticated_note(eps: &[String], wanted: &[String], names: &[String]) -> String {
    let n = eps.len();
    let shown = eps.iter().take(3).map(|e| printable(e)).collect::<Vec<_>>();
    let more = if n > 3 {
        format!(", +{} more", n - 3)
    } else {
        String::new()
    };
    let which = format!(
        "{n} protected endpoint{} ({}{more})",
        if n == 1 { "" } else { "s" },
        shown.join(", ")
    );
    let wanted: Vec<String> = wanted.iter().map(|h| printable(h)).collect();
    let example = match wanted.first() {
        Some(h) if !wanted.iter().any(|h| h == "Authorization") => {
            format!("{h}: ${{env:API_KEY}}")
        }
        _ => "Authorization: Bearer ${env:TOKEN}".to_string(),
    };
    let how = match wanted.len() {
        0 => String::new(),
        _ => format!(" with {}", wanted.join(" or ")),
    };
    let pass = format!("pass --header{how} to authenticate, e.g. --header '{example}'");
    if names.is_empty() {
        format!("chaos is unauthenticated: {which} must answer 401; {pass}")
    } else {
        format!(
            "no --header carries a credential that {which} accept{}: {} must answer 401; {pass}",
            if n == 1 { "s" } else { "" },
            if n == 1 { "it" } else { "they" }
        )
    }
}

/// The operations (`GET /products`, ...) the target's `/openapi.json` lists
/// are those of `model`: without `--manifest`, chaos must not test one
/// service's endpoints against another (run from another folder, it would
/// use the demo manifest).
async fn same_api(model: &Model, target: &str, timeout: Duration) -> Result<(), String> {
    let url = format!("{target}/openapi.json");
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("cannot read {url} to check which API it serves: {e}"))?;
    let body = read_capped(resp, MAX_OPENAPI_BYTES)
        .await
        .map_err(|e| format!("cannot read the OpenAPI document: {e}"))?;
    let doc: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("{url} is not an OpenAPI document: {e}"))?;
    let served: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .filter_map(move |(m, _)| HttpMethod::parse(m).ok().map(|m| format!("{m} {path}")))
        })
        .collect();
    let declared: std::collections::BTreeSet<String> = model
        .manifest
        .endpoints
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    if served == declared {
        return Ok(());
    }
    let list = |v: Vec<&String>| {
        let n = v.len();
        let shown: Vec<String> = v.into_iter().take(5).map(|s| printable(s)).collect();
        format!(
            "{}{}",
            shown.join(", "),
            if n > 5 {
                format!(" (+{} more)", n - 5)
            } else {
                String::new()
            }
        )
    };
    let only_served: Vec<&String> = served.difference(&declared).collect();
    let only_declared: Vec<&String> = declared.difference(&served).collect();
    Err(format!(
        "{target} serves another API than {}: only on the server: [{}]; only in the manifest: [{}]. \
         Pass --manifest with the server's own manifest",
        model.origin(),
        list(only_served),
        list(only_declared)
    ))
}

/// A TCP connect (not an HTTP request, so the server's counters are untouched).
async fn preflight(host: &str, port: u16) -> Result<(), String> {
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connection timed out after 3s".into()),
    }
}

fn progress(n: usize) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} requests ({per_sec}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(n as u64).with_style(style)
}

/// Sends every planned request with `o.concurrency` workers; stops on a lost connection.
/// `headers`: the `--header`s, each with whether it carries a credential
/// (left out of a request planned without credentials).
async fn send_all(
    plan: Arc<Vec<Planned>>,
    headers: Arc<Vec<(headers::Header, bool)>>,
    target: &str,
    o: &ChaosOptions,
) -> (Vec<Option<RequestOutcome>>, Option<String>) {
    let client = match reqwest::Client::builder().timeout(o.timeout).build() {
        Ok(c) => c,
        Err(e) => return (vec![None; plan.len()], Some(format!("HTTP client: {e}"))),
    };
    let bar = progress(plan.len());
    let next = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let rate = o.rate;
    let stop = Arc::new(AtomicBool::new(false));
    let reason: Arc<Mutex<Option<String>>> = Arc::default();
    let results: Arc<Mutex<Vec<Option<RequestOutcome>>>> =
        Arc::new(Mutex::new(vec![None; plan.len()]));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..o.concurrency.min(plan.len()) {
        let (plan, client, bar) = (plan.clone(), client.clone(), bar.clone());
        let headers = headers.clone();
        let (next, stop, reason, results, failures) = (
            next.clone(),
            stop.clone(),
            reason.clone(),
            results.clone(),
            failures.clone(),
        );
        let target = target.to_string();
        workers.push(tokio::spawn(async move {
            loop {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::AcqRel);
                let Some(p) = plan.get(i) else { break };
                // Sustained traffic: request i leaves at i / rate seconds.
                if let Some(rate) = rate {
                    let at = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(at).await;
                }
                let outcome = send(&client, &target, &headers, p).await;
                if outcome.1 {
                    stop.store(true, Ordering::Release);
                    let mut r = reason.lock().unwrap_or_else(|e| e.into_inner());
                    r.get_or_insert_with(|| {
                        format!(
                            "lost the connection to {target}: {}",
                            outcome.0.error.clone().unwrap_or_default()
                        )
                    });
                }
                if !outcome.1 && !outcome.0.meets(p.expect) {
                    let n = failures.fetch_add(1, Ordering::AcqRel) + 1;
                    bar.set_message(format!("{n} unexpected"));
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome.0);
                bar.inc(1);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    bar.finish_and_clear();
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let reason = reason.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (results, reason)
}

/// One request; the flag is true when the target could not be connected to.
async fn send(
    client: &reqwest::Client,
    target: &str,
    headers: &[(headers::Header, bool)],
    p: &Planned,
) -> (RequestOutcome, bool) {
    let mut req = client.request(p.method.to_http(), format!("{target}{}", p.path));
    for (h, credential) in headers {
        if p.credentials || !credential {
            req = req.header(h.name.clone(), h.value.clone());
        }
    }
    if let Some(b) = &p.body {
        req = req
            .header("content-type", "application/json")
            .body(b.clone());
    }
    let start = Instant::now();
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read (and drop) the body so the latency covers the whole
            // response; past the cap, or cut off, the request failed.
            let error = drain_capped(resp, MAX_BODY_BYTES)
                .await
                .err()
                .map(|e| e.to_string());
            (
                RequestOutcome {
                    status: Some(status),
                    error,
                    latency: start.elapsed(),
                },
                false,
            )
        }
        Err(e) => (
            RequestOutcome {
                status: None,
                error: Some(printable(&e.to_string())),
                latency: start.elapsed(),
            },
            e.is_connect(),
        ),
    }
}
