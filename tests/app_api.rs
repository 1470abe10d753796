//! The `App` API of a service built on telltale, in process: a typed
//! handler that reads its request context (caller, request id, headers,
//! trace context), middleware inside the observe layer, start and shutdown
//! hooks with the resource the start hook built, and the service's own
//! identity in `build_info`. One test: the process holds one logger and
//! one server.

mod common;
use common::in_process::InProcess;
use common::tempdir;
use poem::{Endpoint, EndpointExt, IntoResponse};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde_json::Value;
use std::sync::Arc;
use telltale::{Empty, Handler, Input, NoOptions, Setup, SetupError};

/// What the start hook builds.
struct Greeting(String);

#[derive(Object)]
struct Echo {
    greeting: String,
    caller: Option<String>,
    request_id: String,
    custom: Option<String>,
    trace_id: Option<String>,
}

#[derive(ApiResponse)]
enum EchoResponse {
    #[oai(status = 200)]
    Ok(Json<Echo>),
}

struct EchoKind;

impl Handler for EchoKind {
    type Options = NoOptions;
    type Path = Empty;
    type Query = Empty;
    type Body = Empty;
    type Response = EchoResponse;
    type State = Arc<Greeting>;

    fn name(&self) -> &'static str {
        "echo"
    }

    fn setup(&self, _: NoOptions, ctx: &mut Setup<'_>) -> Result<Arc<Greeting>, SetupError> {
        ctx.resource::<Greeting>()
    }

    async fn handle(&self, g: &Arc<Greeting>, input: Input<Empty, Empty, Empty>) -> EchoResponse {
        tracing::info!(target: "app_api::echo", "echoing");
        let r = &input.request;
        EchoResponse::Ok(Json(Echo {
            greeting: g.0.clone(),
            caller: r.caller().map(|c| c.principal().to_string()),
            request_id: r.request_id().to_string(),
            custom: r.header("x-custom").map(String::from),
            trace_id: r.trace().map(|t| t.trace_id()),
        }))
    }
}

/// A `tracing` layer of the user's (`App::layer`): counts the handler's
/// events it sees.
struct Seen(Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if e.metadata().target() == "app_api::echo" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Answers 429 itself to a request with `x-block`, and marks the others.
struct Gate;

impl telltale::Middleware for Gate {
    fn wrap(
        &self,
        ep: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    ) -> poem::endpoint::BoxEndpoint<'static, poem::Response> {
        ep.around(|ep, req| async move {
            if req.headers().contains_key("x-block") {
                return Ok(poem::Response::builder()
                    .status(poem::http::StatusCode::TOO_MANY_REQUESTS)
                    .body("slow down"));
            }
            // Authentication ran before: the caller is known here.
            let who = telltale::current_caller().map(|c| c.principal().to_string());
            let mut resp = ep.call(req).await?.into_response();
            resp.headers_mut()
                .insert("x-gate", poem::http::HeaderValue::from_static("passed"));
            if let Some(who) = who.and_then(|w| poem::http::HeaderValue::from_str(&w).ok()) {
                resp.headers_mut().insert("x-gate-caller", who);
            }
            Ok(resp)
        })
        .boxed()
    }
}

const MANIFEST: &str = r#"
service: { name: echo-svc, version: 0.0.1 }
auth:
  schemes:
    key: { type: api_key, keys: { env: APP_API_TEST_KEYS } }
endpoints:
  - { path: /echo, handler: echo, summary: Echo, auth: { schemes: [key] } }
  - { path: /metrics, handler: prometheus, summary: Metrics }
metrics:
  - { name: http_requests_total, type: counter, help: Requests., labels: [method, path, status], source: http.requests }
  - { name: build_info, type: gauge, help: Build., labels: [version, commit], source: build.info }
logging: { dir: logs, file: echo }
"#;

/// The middleware runs and knows the caller; the typed handler sees the
/// start hook's resource, its caller, request id, headers and trace.
async fn the_handler_sees_its_request_context(client: &reqwest::Client, base: &str) {
    let r = client
        .get(format!("{base}/echo"))
        .header("x-api-key", "key-of-alice-00000001")
        .header("x-custom", "typed access")
        .header("x-request-id", "req-42")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-gate"], "passed", "the middleware ran");
    assert_eq!(r.headers()["x-gate-caller"], "alice", "and knew the caller");
    let echo: Value = r.json().await.unwrap();
    assert_eq!(
        echo["greeting"], "hello from echo-svc",
        "the start hook's resource"
    );
    assert_eq!(echo["caller"], "alice");
    assert_eq!(echo["request_id"], "req-42");
    assert_eq!(echo["custom"], "typed access");
    assert_eq!(echo["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

/// Authentication runs before the middleware: no key, no gate. What the
/// middleware answers itself carries the request id.
async fn authentication_runs_before_the_middleware(client: &reqwest::Client, base: &str) {
    let r = client.get(format!("{base}/echo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-gate").is_none());
    // What the middleware answers itself is counted and carries the id.
    let r = client
        .get(format!("{base}/echo"))
        .header("x-api-key", "key-of-alice-00000001")
        .header("x-block", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("x-request-id"));
}

/// `build_info` carries the service's identity, and every answer is
/// counted, the middleware's own among them.
async fn metrics_carry_the_identity_and_count_every_answer(client: &reqwest::Client, base: &str) {
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"build_info{commit="abc123",version="9.9.9"} 1"#),
        "{metrics}"
    );
    let echo_count = |status: &str| {
        common::metric_sum(
            &metrics,
            "http_requests_total",
            &["path=\"/echo\"", &format!("status=\"{status}\"")],
        )
    };
    assert_eq!(echo_count("200"), 1.0);
    assert_eq!(echo_count("401"), 1.0);
    assert_eq!(echo_count("4xx"), 1.0, "the middleware's 429: {metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_sees_its_callers_wraps_its_handlers_and_owns_its_lifecycle() {
    let dir = tempdir();
    let manifest = dir.path().join("manifest.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let shutdown_mark = dir.path().join("shutdown-ran");
    let mark = shutdown_mark.clone();
    std::env::set_var("APP_API_TEST_KEYS", "key-of-alice-00000001:alice");
    std::env::set_current_dir(dir.path()).unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = seen.clone();
    let app = move || {
        let mark = mark.clone();
        telltale::App::new()
            .layer(Seen(counted.clone()))
            .identity("echo-svc", "9.9.9", "abc123")
            .on_start(|started| async move {
                Ok(Greeting(format!(
                    "hello from {}",
                    started.manifest.service.name
                )))
            })
            .on_shutdown(move |resources| {
                let mark = mark.clone();
                async move {
                    let g = resources.get::<Greeting>().map(|g| g.0.clone());
                    std::fs::write(&mark, g.unwrap_or_default()).unwrap();
                }
            })
            .middleware(Gate)
            .handler(EchoKind)
    };

    // `validate` runs neither hook, yet checks the handler's setup.
    let code = app().run_cli_from(["echo", "validate", "--manifest", "manifest.yaml"]);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(!shutdown_mark.exists());

    let server = InProcess::serve("echo", "manifest.yaml", "/metrics", app).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();

    the_handler_sees_its_request_context(&client, &base).await;
    authentication_runs_before_the_middleware(&client, &base).await;
    metrics_carry_the_identity_and_count_every_answer(&client, &base).await;
    // The user's own layer, installed with telltale's, saw the handler's event.
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);

    // SIGTERM: the server drains, then the shutdown hook runs.
    server.stop().await;
    assert_eq!(
        std::fs::read_to_string(&shutdown_mark).unwrap(),
        "hello from echo-svc"
    );
}
