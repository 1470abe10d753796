//! Traces end to end: the real server exports to an OTLP/HTTP receiver in
//! the test, which decodes every export with the OpenTelemetry protobuf
//! definitions. Requests carry known `traceparent`s; the spans must continue
//! them, follow the HTTP semantic conventions, and match the request's log
//! lines. One test per family of `OTEL_*` variables.

mod common;

use common::otlp::{Otlp, Received};
use common::{copy_default_manifest, log_lines, raw, tempdir, Server};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// `telltale serve` of `manifest` in `dir` with `env` (and no `OTEL_*`
/// variable of the test's own environment).
fn serve(manifest: &Path, dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(common::bin());
    cmd.args(["serve", "--manifest"])
        .arg(manifest)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env_remove("TELLTALE_INSTANCE")
        .env_remove("POD_NAME");
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stderr = std::fs::File::create(dir.join("server.stderr")).unwrap();
    Server::spawn(cmd, dir, Stdio::from(stderr)).0
}

/// The demo manifest with its `tracing:` section replaced by `section`
/// (none: removed).
fn manifest_with_tracing(dir: &Path, section: Option<&str>) -> std::path::PathBuf {
    let path = copy_default_manifest(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("tracing:") {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.is_empty() || line.starts_with('#')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    if let Some(s) = section {
        out.push_str(s);
    }
    std::fs::write(&path, out).unwrap();
    path
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn server_span(r: &Received) -> bool {
    r.span.kind == opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
}

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_continues_its_trace_and_its_log_lines_carry_the_ids() {
    let otlp = Otlp::start().await;
    let dir = tempdir();
    let manifest = manifest_with_tracing(
        dir.path(),
        Some(&format!(
            "tracing:\n  endpoint: {}\n  delay: 100ms\n",
            otlp.base
        )),
    );
    let server = serve(&manifest, dir.path(), &[]);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let resp = get(
        &server.url("/products"),
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=opaque"),
            ("user-agent", "traces-test/1.0"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let span = otlp
        .wait_for(WAIT, |r| r.trace_id() == TRACE && server_span(r))
        .await
        .unwrap_or_else(|| panic!("no server span; stderr:\n{}", server.stderr()));
    // Continued: same trace, the caller's span as parent.
    assert_eq!(span.parent_id(), PARENT);
    assert_ne!(span.span_id(), PARENT);
    assert_eq!(span.span.trace_state, "vendor=opaque");
    // Named and attributed by the HTTP semantic conventions.
    assert_eq!(span.span.name, "GET /products");
    assert_eq!(span.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(span.attr("http.route").as_deref(), Some("/products"));
    assert_eq!(
        span.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(span.attr("url.path").as_deref(), Some("/products"));
    assert_eq!(span.attr("url.scheme").as_deref(), Some("http"));
    assert_eq!(span.attr("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        span.attr("server.port").as_deref(),
        Some(server.port.to_string().as_str())
    );
    assert_eq!(
        span.attr("user_agent.original").as_deref(),
        Some("traces-test/1.0")
    );
    assert!(span.attr("error.type").is_none());
    assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
    assert!(span.span.start_time_unix_nano > 1_600_000_000_000_000_000);
    // The resource names the service and the instance the log lines name.
    assert_eq!(
        span.resource("service.name").as_deref(),
        Some("ecommerce-api")
    );
    let version = span.resource("service.version").unwrap();
    assert!(!version.is_empty());
    let instance = span.resource("service.instance.id").unwrap();

    // Without a traceparent: a new trace, no parent.
    let resp = get(&server.url("/users"), &[]).await;
    assert_eq!(resp.status(), 200);
    let fresh = otlp
        .wait_for(WAIT, |r| r.attr("http.route").as_deref() == Some("/users"))
        .await
        .expect("a span for the request without traceparent");
    assert_ne!(fresh.trace_id(), TRACE);
    assert!(fresh.span.parent_span_id.is_empty());

    // A 5xx: error.type and status Error.
    let resp = get(&server.url("/error"), &[]).await;
    assert_eq!(resp.status(), 500);
    let failed = otlp
        .wait_for(WAIT, |r| r.attr("http.route").as_deref() == Some("/error"))
        .await
        .expect("a span for /error");
    assert_eq!(failed.attr("error.type").as_deref(), Some("500"));
    assert_eq!(
        failed.span.status.as_ref().map(|s| s.code),
        Some(opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32)
    );
    assert!(server.stop().success());

    // The request line of the traced request carries the same ids.
    let lines = log_lines(dir.path());
    let line = lines
        .iter()
        .find(|l| l["path"] == "/products" && l["logger"] == "telltale::http")
        .expect("the request line");
    assert_eq!(line["trace_id"], TRACE);
    assert_eq!(line["span_id"], span.span_id().as_str());
    assert_eq!(line["instance"], instance.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_before_routing_have_spans_too() {
    let otlp = Otlp::start().await;
    let dir = tempdir();
    let manifest = manifest_with_tracing(dir.path(), None);
    let server = serve(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.base),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let tp = |n: u8| format!("00-{TRACE}-{:016x}-01", 0x1000 + u64::from(n));
    // Unmatched path: 404, traced, no http.route.
    let r = get(&server.url("/no/such/path"), &[("traceparent", &tp(1))]).await;
    assert_eq!(r.status(), 404);
    // A method no route has: 405.
    let r = reqwest::Client::new()
        .delete(server.url("/products"))
        .header("traceparent", tp(2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // A body over the limit: 413.
    let r = reqwest::Client::new()
        .post(server.url("/products"))
        .header("traceparent", tp(3))
        .header("content-length", "999999999999")
        .body("")
        .send()
        .await;
    // hyper may close the connection before the body; the span is what counts.
    drop(r);
    // The 405's path matched a route: its template is the span's route
    // (a 413 is refused before routing: none).
    for (n, status, route) in [
        (1u8, "404", None),
        (2, "405", Some("/products")),
        (3, "413", None),
    ] {
        let parent = format!("{:016x}", 0x1000 + u64::from(n));
        let s = otlp
            .wait_for(WAIT, |r| r.parent_id() == parent)
            .await
            .unwrap_or_else(|| panic!("no span for the {status}"));
        assert_eq!(s.trace_id(), TRACE);
        assert_eq!(s.attr("http.response.status_code").as_deref(), Some(status));
        assert_eq!(s.attr("http.route").as_deref(), route, "{status}");
        assert!(server_span(&s));
    }
    // 414 and 431 are refused by hyper before any header is read: a new
    // trace each, named by the method.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    assert!(raw(server.port, long.as_bytes()).starts_with("HTTP/1.1 414"));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    assert!(raw(server.port, big.as_bytes()).starts_with("HTTP/1.1 431"));
    for status in ["414", "431"] {
        let s = otlp
            .wait_for(WAIT, |r| {
                r.attr("http.response.status_code").as_deref() == Some(status)
            })
            .await
            .unwrap_or_else(|| panic!("no span for the {status}; stderr:\n{}", server.stderr()));
        assert!(s.span.parent_span_id.is_empty());
        assert_eq!(s.span.name, "GET");
    }
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_endpoint_variables_choose_where_spans_go() {
    let right = Otlp::start().await;
    let wrong = Otlp::start().await;
    let dir = tempdir();
    // The manifest names one receiver; the environment wins.
    let manifest = manifest_with_tracing(
        dir.path(),
        Some(&format!("tracing:\n  endpoint: {}\n", wrong.base)),
    );
    let exact = format!("{}/v1/traces", right.base);
    let server = serve(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/unused"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &exact),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    get(&server.url("/products"), &[]).await;
    assert!(right.wait_for(WAIT, server_span).await.is_some());
    assert!(wrong.spans().is_empty());
    assert_eq!(right.bad_content_type(), 0);
    assert!(server.stop().success());

    // A protocol telltale does not speak is a clear start-up error.
    let out = Command::new(common::bin())
        .args(["serve", "--manifest"])
        .arg(&manifest)
        .args(["--port", "0"])
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && err.contains("http/protobuf"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sampler_variables_decide_what_is_recorded() {
    let otlp = Otlp::start().await;
    let dir = tempdir();
    let manifest = manifest_with_tracing(dir.path(), None);
    // parentbased_traceidratio at 0: a new trace is never recorded, a
    // sampled parent's always is.
    let server = serve(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.base),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    for _ in 0..20 {
        get(&server.url("/users"), &[]).await;
    }
    let sampled = format!("00-{TRACE}-{PARENT}-01");
    get(&server.url("/products"), &[("traceparent", &sampled)]).await;
    let unsampled = format!("00-{}-{PARENT}-00", "a".repeat(32));
    get(&server.url("/products"), &[("traceparent", &unsampled)]).await;
    assert!(otlp
        .wait_for(WAIT, |r| r.trace_id() == TRACE)
        .await
        .is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let routes: Vec<_> = otlp
        .spans()
        .iter()
        .filter_map(|s| s.attr("http.route"))
        .collect();
    assert_eq!(routes, ["/products"], "only the sampled parent's request");
    assert!(server.stop().success());

    // always_on records what an unsampled parent did not.
    let dir = tempdir();
    let manifest = manifest_with_tracing(dir.path(), None);
    let otlp = Otlp::start().await;
    let server = serve(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.base),
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    get(&server.url("/products"), &[("traceparent", &unsampled)]).await;
    assert!(otlp
        .wait_for(WAIT, |r| r.trace_id() == "a".repeat(32))
        .await
        .is_some());
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_resource_variables_name_the_service() {
    let otlp = Otlp::start().await;
    let dir = tempdir();
    let manifest = manifest_with_tracing(dir.path(), None);
    let server = serve(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.base),
            ("OTEL_SERVICE_NAME", "shop-eu"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=staging,team=web%20shop",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    get(&server.url("/products"), &[]).await;
    let s = otlp.wait_for(WAIT, server_span).await.expect("a span");
    assert_eq!(s.resource("service.name").as_deref(), Some("shop-eu"));
    assert_eq!(
        s.resource("deployment.environment").as_deref(),
        Some("staging")
    );
    assert_eq!(s.resource("team").as_deref(), Some("web shop"));
    assert!(s.resource("service.instance.id").is_some());
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_disabled_turns_tracing_off() {
    let otlp = Otlp::start().await;
    let dir = tempdir();
    let manifest = manifest_with_tracing(
        dir.path(),
        Some(&format!(
            "tracing:\n  endpoint: {}\n  delay: 100ms\n",
            otlp.base
        )),
    );
    let server = serve(&manifest, dir.path(), &[("OTEL_SDK_DISABLED", "true")]);
    let tp = format!("00-{TRACE}-{PARENT}-01");
    get(&server.url("/products"), &[("traceparent", &tp)]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(otlp.spans().is_empty());
    assert!(server.stop().success());
    // Tracing off: no trace ids on the lines.
    let lines = log_lines(dir.path());
    assert!(lines.iter().any(|l| l["path"] == "/products"));
    assert!(lines.iter().all(|l| l.get("trace_id").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_outage_is_logged_once_counted_and_recovered_from() {
    let otlp = Otlp::start().await;
    otlp.set_failing(true);
    let dir = tempdir();
    let manifest = manifest_with_tracing(dir.path(), None);
    let server = serve(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.base),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
        ],
    );
    for _ in 0..5 {
        get(&server.url("/products"), &[]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = common::get_text(&server.url("/metrics")).await;
    let failed = common::metric_sum(
        &metrics,
        "telltale_trace_spans_dropped_total",
        &["reason=\"export_failed\""],
    );
    assert!(
        failed >= 5.0,
        "{failed} spans counted as failed:\n{metrics}"
    );
    otlp.set_failing(false);
    get(&server.url("/users"), &[]).await;
    assert!(otlp
        .wait_for(WAIT, |r| r.attr("http.route").as_deref() == Some("/users"))
        .await
        .is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = common::get_text(&server.url("/metrics")).await;
    assert!(common::metric_sum(&metrics, "telltale_trace_spans_exported_total", &[]) >= 1.0);
    assert!(server.stop().success());
    let lines = log_lines(dir.path());
    let failed_lines = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::traces" && l["level"] == "warning")
        .count();
    let traces_lines: Vec<_> = lines
        .iter()
        .filter(|l| l["logger"] == "telltale::traces")
        .collect();
    assert_eq!(failed_lines, 1, "one warning per outage: {traces_lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l["logger"] == "telltale::traces" && l["message"] == "trace export works again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_spans_and_never_holds_a_request() {
    let otlp = Otlp::start().await;
    otlp.set_delay(Duration::from_secs(3));
    let dir = tempdir();
    let manifest = manifest_with_tracing(dir.path(), None);
    let server = serve(
        &manifest,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.base),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "2"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "10"),
        ],
    );
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert_eq!(get(&server.url("/products"), &[]).await.status(), 200);
    }
    // The receiver takes 3 s an export: requests did not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "50 requests took {:?}",
        started.elapsed()
    );
    let metrics = common::get_text(&server.url("/metrics")).await;
    let dropped = common::metric_sum(
        &metrics,
        "telltale_trace_spans_dropped_total",
        &["reason=\"queue_full\""],
    );
    assert!(dropped >= 40.0, "{dropped} dropped:\n{metrics}");
    drop(server);
}
