//! The payments service as its own process: approvals and declines by the
//! manifest's rules, refused bodies, its business metrics and log lines,
//! validation of its options, its handler span, and its rendered rules
//! checked by promtool.

#[path = "../../../tests/common/otlp.rs"]
#[allow(dead_code)]
mod otlp;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn payments_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The key every test service accepts (`PAYMENTS_API_KEYS`, principal
/// `shop`), and its scrape token.
const SHOP_KEY: &str = "shop-key-0123456789abc";
const SCRAPE_TOKEN: &str = "scrape-token-0123456789";

/// A client that presents the shop's key and the scrape token.
fn client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-api-key", SHOP_KEY.parse().unwrap());
    h.insert(
        "authorization",
        format!("Bearer {SCRAPE_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// A running payments service, killed on drop unless stopped.
struct Payments {
    child: Option<Child>,
    base: String,
}

impl Payments {
    /// Started on the repository's manifest; tracing goes nowhere
    /// (`OTEL_SDK_DISABLED`) unless `env` says otherwise.
    fn start(dir: &Path) -> Payments {
        Payments::start_with(
            &payments_dir().join("manifest.yaml"),
            dir,
            &[("OTEL_SDK_DISABLED", "true")],
        )
    }

    /// Started with `env` besides the keys.
    fn start_with(manifest: &Path, dir: &Path, env: &[(&str, &str)]) -> Payments {
        let mut child = Command::new(env!("CARGO_BIN_EXE_payments"))
            .envs(env.iter().copied())
            .args(["serve", "--manifest"])
            .arg(manifest)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("PAYMENTS_API_KEYS", format!("{SHOP_KEY}:shop"))
            .env("PAYMENTS_METRICS_TOKEN", SCRAPE_TOKEN)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("payments.stderr")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port: u16 = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("telltale listening on http://") {
                        break a.rsplit(':').next().unwrap().parse().unwrap();
                    }
                }
                Err(_) => panic!(
                    "payments did not start:\n{}",
                    std::fs::read_to_string(dir.join("payments.stderr")).unwrap_or_default()
                ),
            }
        };
        Payments {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    /// SIGTERM and a clean exit (the log file is flushed).
    fn stop(mut self) {
        let mut c = self.child.take().unwrap();
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(c.wait().unwrap().success());
    }
}

impl Drop for Payments {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("payments-test-")
        .tempdir()
        .unwrap()
}

/// The payments manifest copied into `dir`, edited by `f`.
fn manifest_in(dir: &Path, f: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
    let text = std::fs::read_to_string(payments_dir().join("manifest.yaml")).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    f(&mut v);
    let p = dir.join("manifest.yaml");
    std::fs::write(&p, serde_yaml::to_string(&v).unwrap()).unwrap();
    p
}

fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_payments"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn promtool(args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("promtool is required (Debian package `prometheus`): {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `POST /payments` with `body` as is; the status and the JSON answer.
async fn post(c: &reqwest::Client, svc: &Payments, body: &str) -> (u16, Value) {
    let r = c
        .post(svc.url("/payments"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    // (telltale's input errors say `application/json`, typed answers
    // `application/json; charset=utf-8`.)
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "every answer is JSON: {content_type}"
    );
    (status, r.json().await.unwrap())
}

async fn metrics(c: &reqwest::Client, svc: &Payments) -> String {
    let r = c.get(svc.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// `payments_total` series of a `/metrics` text: (outcome, value).
fn outcomes(metrics: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("payments_total{outcome=\""))
        .map(|rest| {
            let (outcome, value) = rest.split_once("\"} ").unwrap();
            (outcome.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The value of the sample line starting with `prefix ` (unlabelled, or
/// with its labels written out).
fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {prefix} in:\n{metrics}"))
        .parse()
        .unwrap()
}

/// Every JSON line of the service's log files.
fn log_lines(dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for f in std::fs::read_dir(dir.join("logs")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    lines
}

fn assert_declined(status: u16, err: &Value, field: &str, words: &str) {
    assert_eq!(status, 402, "{err}");
    assert_eq!(err["status"], 402, "{err}");
    assert_eq!(err["error"], "Payment Required", "{err}");
    assert_eq!(err["field"], field, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains(words), "{err}");
    assert!(err.get("payment_id").is_none(), "{err}");
}

#[tokio::test]
async fn an_approved_payment_is_a_201_with_its_id() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    let body =
        json!({"order_id": 42, "amount_euros": 25.0, "method": "card", "card_last4": "4242"});
    let (status, pay) = post(&c, &svc, &body.to_string()).await;
    assert_eq!(status, 201, "{pay}");
    assert_eq!(pay["status"], "approved");
    assert_eq!(pay["order_id"], 42);
    assert_eq!(pay["amount_euros"], 25.0);
    assert_eq!(pay["method"], "card");
    let id = pay["payment_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("pay-"), "{pay}");
    // Exactly at the limit is still approved, and without a card.
    let body = json!({"order_id": 43, "amount_euros": 1000, "method": "card"});
    let (status, pay) = post(&c, &svc, &body.to_string()).await;
    assert_eq!(status, 201, "{pay}");
    assert_ne!(pay["payment_id"], id.as_str(), "each payment its own id");
    svc.stop();
}

#[tokio::test]
async fn over_the_limit_is_a_402_with_the_error_body() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let body =
        json!({"order_id": 7, "amount_euros": 1000.01, "method": "card", "card_last4": "4242"});
    let (status, err) = post(&client(), &svc, &body.to_string()).await;
    assert_declined(status, &err, "amount_euros", "over the limit of 1000 euros");
    svc.stop();
}

#[tokio::test]
async fn a_declined_card_is_a_402() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    let body = json!({"order_id": 8, "amount_euros": 10, "method": "card", "card_last4": "0002"});
    let (status, err) = post(&c, &svc, &body.to_string()).await;
    assert_declined(status, &err, "card_last4", "card ending 0002");
    // Another card of the same amount goes through.
    let body = json!({"order_id": 8, "amount_euros": 10, "method": "card", "card_last4": "0003"});
    let (status, pay) = post(&c, &svc, &body.to_string()).await;
    assert_eq!(status, 201, "{pay}");
    svc.stop();
}

#[tokio::test]
async fn invalid_bodies_are_refused_with_json_naming_what_is_wrong() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    // Each bad body: (body, status, word its message names).
    for (body, status, names) in [
        (r#"{"order_id": 1, "amount_euros": "#, 400, "malformed JSON"),
        ("", 400, "body"),
        (r#"{"amount_euros": 5, "method": "card"}"#, 422, "order_id"),
        (r#"{"order_id": 1, "method": "card"}"#, 422, "amount_euros"),
        (
            r#"{"order_id": 1, "amount_euros": 0, "method": "card"}"#,
            422,
            "amount_euros",
        ),
        (
            r#"{"order_id": 1, "amount_euros": -3, "method": "card"}"#,
            422,
            "amount_euros",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 1000001, "method": "card"}"#,
            422,
            "amount_euros",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 5, "method": ""}"#,
            422,
            "method",
        ),
        (
            &format!(
                r#"{{"order_id": 1, "amount_euros": 5, "method": "{}"}}"#,
                "x".repeat(33)
            ),
            422,
            "method",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 5, "method": "card", "card_last4": "12a4"}"#,
            422,
            "card_last4",
        ),
        (
            r#"{"order_id": 1, "amount_euros": 5, "method": "card", "card_last4": "12345"}"#,
            422,
            "card_last4",
        ),
        (
            r#"{"order_id": -1, "amount_euros": 5, "method": "card"}"#,
            422,
            "body",
        ),
        ("[]", 422, "body"),
    ] {
        let (got, err) = post(&c, &svc, body).await;
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["status"], status, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(names),
            "{body}: {err}"
        );
    }
    // None of them reached the handler: nothing counted.
    let m = metrics(&c, &svc).await;
    assert!(outcomes(&m).iter().all(|(_, v)| *v == 0.0), "{m}");
    assert_eq!(sample(&m, "payment_amount_euros_count"), 0.0);
    svc.stop();
}

/// Only a caller with a key of PAYMENTS_API_KEYS may authorize a payment,
/// and only the scrape token reads `/metrics`.
#[tokio::test]
async fn payments_need_the_key_and_metrics_the_scrape_token() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let anonymous = reqwest::Client::new();
    let body = r#"{"order_id": 1, "amount_euros": 5, "method": "card"}"#;
    for key in [None, Some("wrong-key-0123456789abc"), Some(SCRAPE_TOKEN)] {
        let mut r = anonymous
            .post(svc.url("/payments"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{key:?}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "ApiKey realm=\"payments\", header=\"X-API-Key\""
        );
    }
    let r = anonymous.get(svc.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let m = metrics(&client(), &svc).await;
    assert!(m.contains(r#"path="/payments",status="401""#), "{m}");
    assert!(outcomes(&m).iter().all(|(_, v)| *v == 0.0), "{m}");
    svc.stop();
    for l in log_lines(dir.path()) {
        let text = l.to_string();
        assert!(!text.contains(SHOP_KEY) && !text.contains(SCRAPE_TOKEN));
    }
}

/// `payments_total{outcome}` counts each payment once, `payment_amount_euros`
/// observes each amount; each payment logs one line with its order id and
/// outcome, by the caller's principal.
#[tokio::test]
async fn the_metrics_count_approved_and_declined_and_each_payment_logs_one_line() {
    let dir = tempdir();
    let svc = Payments::start(dir.path());
    let c = client();
    let before = outcomes(&metrics(&c, &svc).await);
    let names: Vec<&str> = before.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        names,
        ["approved", "declined", "other"],
        "every series at zero from the start"
    );
    assert!(before.iter().all(|(_, v)| *v == 0.0));

    // (order id, amount, card, approved?)
    let payments = [
        (1, 12.5, Some("4242"), true),
        (2, 999.0, None, true),
        (3, 1500.0, None, false),
        (4, 30.0, Some("0002"), false),
        (5, 40.0, Some("1111"), true),
        (6, 2500.0, Some("0002"), false),
    ];
    for (order_id, amount, card, approved) in payments {
        let mut body = json!({"order_id": order_id, "amount_euros": amount, "method": "card"});
        if let Some(card) = card {
            body["card_last4"] = card.into();
        }
        let (status, answer) = post(&c, &svc, &body.to_string()).await;
        assert_eq!(status, if approved { 201 } else { 402 }, "{answer}");
    }
    // A refused body is not a payment.
    let (status, _) = post(&c, &svc, r#"{"order_id": 9}"#).await;
    assert_eq!(status, 422);

    let m = metrics(&c, &svc).await;
    let after = outcomes(&m);
    let get = |o: &str| after.iter().find(|(x, _)| x == o).unwrap().1;
    assert_eq!(
        (get("approved"), get("declined"), get("other")),
        (3.0, 3.0, 0.0),
        "{m}"
    );
    assert_eq!(sample(&m, "payment_amount_euros_count"), 6.0);
    assert_eq!(sample(&m, "payment_amount_euros_sum"), 5081.5);
    assert_eq!(sample(&m, r#"payment_amount_euros_bucket{le="1000"}"#), 4.0);
    assert!(
        m.contains(r#"http_requests_total{method="POST",path="/payments",status="402"} 3"#),
        "{m}"
    );
    assert!(m.contains("build_info{"), "{m}");
    svc.stop();

    let lines = log_lines(dir.path());
    let logged: Vec<&Value> = lines
        .iter()
        .filter(|l| l["logger"] == "payments::authorize")
        .collect();
    assert_eq!(logged.len(), payments.len(), "one line per payment");
    for ((order_id, _, _, approved), l) in payments.iter().zip(&logged) {
        let outcome = if *approved { "approved" } else { "declined" };
        assert_eq!(l["order_id"], *order_id, "{l}");
        assert_eq!(l["outcome"], outcome, "{l}");
        assert_eq!(l["message"], format!("payment {outcome}"), "{l}");
        assert_eq!(l["level"], "info", "{l}");
        assert_eq!(l["route"], "/payments", "{l}");
        assert_eq!(l["caller"], "shop", "{l}");
        assert_eq!(l["request_id"].as_str().unwrap().len(), 32, "{l}");
    }
    assert_eq!(logged[2]["reason"], "amount_euros");
    assert_eq!(logged[3]["reason"], "card_last4");
    // The start-up line names payments, not telltale.
    let started = lines
        .iter()
        .find(|l| l["logger"] == "telltale::internals::server" && l["address"].is_string())
        .expect("the start-up line");
    let message = format!("payments {} listening on", env!("CARGO_PKG_VERSION"));
    assert!(
        started["message"].as_str().unwrap().starts_with(&message),
        "{started}"
    );
}

/// Bad decline rules in `options:` are `validate` errors located in the
/// manifest: a type or unknown key at the option, a rule `setup` refuses at
/// the endpoint's `handler:`.
#[test]
fn validate_locates_bad_options() {
    let dir = tempdir();
    let cases: [(&str, &str); 6] = [
        (
            "{limit_euros: -5, declined_cards: ['0002']}",
            "options.limit_euros must be more than 0 and at most 1000000 euros, not -5",
        ),
        (
            "{limit_euros: 100, declined_cards: ['2']}",
            r#"options.declined_cards[0]: "2" is not a card ending (exactly 4 digits, quoted: "0002")"#,
        ),
        (
            "{limit_euros: 100, declined_cards: ['0002', '0002']}",
            r#"options.declined_cards[1]: "0002" is listed twice"#,
        ),
        (
            "{declined_cards: ['0002']}",
            "options.limit_euros is required",
        ),
        (
            "{limit_euros: 100, declined_cards: [2]}",
            "endpoints[0].options.declined_cards[0]: invalid type: integer `2`, expected a string",
        ),
        (
            "{limit: 100}",
            "endpoints[0].options.limit: unknown field `limit`, expected `limit_euros` or `declined_cards`",
        ),
    ];
    for (options, want) in cases {
        let m = manifest_in(dir.path(), |v| {
            v["endpoints"][0]["options"] = serde_yaml::from_str(options).unwrap();
        });
        let (code, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir.path());
        assert_eq!(code, 1, "{options}: {err}");
        assert!(err.contains(want), "{options}: missing {want:?} in:\n{err}");
        assert!(err.contains("1 error in manifest"), "{options}: {err}");
        // Located: file:line:column, the line being the option's or the handler's.
        let text = std::fs::read_to_string(&m).unwrap();
        let at = err
            .lines()
            .find(|l| l.contains(want))
            .unwrap()
            .strip_prefix(&format!("{}:", m.display()))
            .unwrap_or_else(|| panic!("not located: {err}"));
        let line: usize = at.split(':').next().unwrap().parse().unwrap();
        let source = text.lines().nth(line - 1).unwrap();
        if want.starts_with("endpoints[0].options") {
            // Within the first endpoint's `options:` block.
            let lines: Vec<&str> = text.lines().collect();
            let options = lines.iter().position(|l| l.trim() == "options:").unwrap() + 1;
            let next = (options..lines.len())
                .find(|&i| lines[i].trim_start().starts_with("- path:"))
                .unwrap();
            assert!(
                (options..=next).contains(&line),
                "{line} not in {options}..{next}: {source}\n{text}"
            );
        } else {
            assert!(
                err.contains("endpoints[0].handler: handler kind \"payments.authorize\": "),
                "{err}"
            );
            assert!(
                source.contains("handler: payments.authorize"),
                "{line}: {source}"
            );
        }
    }
    // The repository's manifest is valid.
    let (code, out, err) = run(
        &[
            "validate",
            "--manifest",
            payments_dir().join("manifest.yaml").to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok (4 endpoints, 5 metrics, 4 panels"),
        "{out}"
    );
}

/// `render` of the payments manifest; promtool checks the rules and runs
/// their unit tests (the hand-written alert's fixtures among them), and
/// fails them when the alert no longer fires on its firing fixture.
#[test]
fn render_gives_rules_promtool_checks_and_tests() {
    let dir = tempdir();
    let out = dir.path().join("stack");
    let (code, stdout, err) = run(
        &[
            "render",
            "--manifest",
            payments_dir().join("manifest.yaml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{stdout}{err}");
    let prom = out.join("prometheus");
    let (ok, text) = promtool(&["check", "rules", "alerts.yml"], &prom);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS: 3 rules found"), "{text}");
    let (ok, text) = promtool(&["test", "rules", "alerts.test.yml"], &prom);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    let (ok, text) = promtool(
        &["check", "config", "--syntax-only", "prometheus.yml"],
        &prom,
    );
    assert!(ok, "{text}");

    let rules = std::fs::read_to_string(prom.join("alerts.yml")).unwrap();
    for alert in ["PaymentsDeclinedShareHigh", "HighErrorRatio", "TargetDown"] {
        assert!(rules.contains(&format!("alert: \"{alert}\"")), "{rules}");
    }
    let tests = std::fs::read_to_string(prom.join("alerts.test.yml")).unwrap();
    assert!(tests.contains("PaymentsDeclinedShareHigh"), "{tests}");
    let config = std::fs::read_to_string(prom.join("prometheus.yml")).unwrap();
    assert!(config.contains(r#"job_name: "payments""#), "{config}");
    assert!(config.contains(":8003"), "{config}");
    assert!(!config.contains(SCRAPE_TOKEN));
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("grafana/dashboards/payments.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard["uid"], "payments");
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Payments by Outcome"), "{titles:?}");

    // An alert that never fires on its firing fixture fails its unit test.
    let m = manifest_in(dir.path(), |v| {
        let expr = v["alerts"][0]["expr"]
            .as_str()
            .unwrap()
            .replace("> 0.2", "> 0.6");
        v["alerts"][0]["expr"] = expr.into();
    });
    let broken = dir.path().join("broken");
    let (code, stdout, err) = run(
        &[
            "render",
            "--manifest",
            m.to_str().unwrap(),
            "--out",
            broken.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{stdout}{err}");
    let (ok, text) = promtool(
        &["test", "rules", "alerts.test.yml"],
        &broken.join("prometheus"),
    );
    assert!(!ok, "a broken alert must fail its test:\n{text}");
    assert!(text.contains("PaymentsDeclinedShareHigh"), "{text}");
}

/// The handler's `authorize` span is a child span of the request's server
/// span, its fields (and the outcome it records) attributes; the payment's
/// log line carries the server span's ids. Received by an OTLP receiver that
/// decodes with the OpenTelemetry protobuf definitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorize_span_is_a_child_of_the_request_span() {
    let receiver = otlp::Otlp::start().await;
    let dir = tempdir();
    let svc = Payments::start_with(
        &payments_dir().join("manifest.yaml"),
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = client()
        .post(svc.url("/payments"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .header("content-type", "application/json")
        .body(r#"{"order_id": 77, "amount_euros": 20, "method": "card", "card_last4": "0002"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    let wait = Duration::from_secs(15);
    let server = receiver
        .wait_for(wait, |s| {
            s.trace_id() == trace && s.span.name == "POST /payments"
        })
        .await
        .expect("the server span");
    let child = receiver
        .wait_for(wait, |s| s.span.name == "authorize")
        .await
        .unwrap_or_else(|| {
            let names: Vec<_> = receiver
                .spans()
                .iter()
                .map(|s| s.span.name.clone())
                .collect();
            panic!("no span of the handler's among {names:?}")
        });
    assert_eq!(child.trace_id(), trace);
    assert_eq!(child.parent_id(), server.span_id());
    assert_eq!(child.attr("order_id").as_deref(), Some("77"));
    assert_eq!(child.attr("method").as_deref(), Some("card"));
    assert_eq!(child.attr("outcome").as_deref(), Some("declined"));
    assert!(child.span.start_time_unix_nano >= server.span.start_time_unix_nano);
    assert!(child.span.end_time_unix_nano <= server.span.end_time_unix_nano);
    assert!(
        server
            .span
            .events
            .iter()
            .any(|e| e.name == "payment declined"),
        "the payment's line is an event of the server span"
    );
    svc.stop();
    let line = log_lines(dir.path())
        .into_iter()
        .find(|l| l["message"] == "payment declined")
        .expect("the payment's log line");
    assert_eq!(line["trace_id"], trace);
    assert_eq!(line["span_id"], server.span_id().as_str());
}
