//! A dependency kind of the user's, registered with `App::dependency_kind`
//! beside the built-ins: `validate` knows its name, a handler gets its
//! client from `Setup::dependency`, its background health check drives
//! `/ready` and `telltale_dependency_up`, and `render` gives it the same
//! dashboard row and alerts as a built-in kind's.

mod common;
use common::in_process::InProcess;
use common::tempdir;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use std::any::TypeId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use telltale::internals::manifest::dependencies::Dependency;
use telltale::internals::manifest::Diagnostics;
use telltale::internals::model::dependencies::{
    DependencyCtx, DependencyKind, PreparedDependency, StartCtx, Started,
};
use telltale::{Empty, Handler, Input, NoOptions, Setup, SetupError};

/// Whether the test's "cache" answers its health check.
static HEALTHY: AtomicBool = AtomicBool::new(true);

/// The client handlers get: a greeting from the cache.
#[derive(Clone)]
struct MemoClient(Arc<String>);

struct Memo;
struct Prepared;

impl DependencyKind for Memo {
    fn name(&self) -> &'static str {
        "memo"
    }
    fn prepare(&self, ctx: &DependencyCtx<'_>) -> Result<Arc<dyn PreparedDependency>, Diagnostics> {
        if ctx.dependency.url.is_none() {
            return Err(ctx.error("url", "a memo dependency needs a url"));
        }
        Ok(Arc::new(Prepared))
    }
}

impl PreparedDependency for Prepared {
    fn system(&self) -> &'static str {
        "memo"
    }
    fn operations(&self) -> Vec<String> {
        vec!["get".into()]
    }
    fn client_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<MemoClient>(), "MemoClient")
    }
    fn start(&self, ctx: StartCtx<'_>) -> Result<Started, String> {
        let url = ctx.target.ok_or("no url")?;
        Ok(Started {
            client: Arc::new(MemoClient(Arc::new(format!("hello from {url}")))),
            check: Arc::new(|| {
                Box::pin(async {
                    if HEALTHY.load(Ordering::SeqCst) {
                        Ok(())
                    } else {
                        Err("the memo is gone".to_string())
                    }
                })
            }),
            pool: None,
            shown: url,
        })
    }
    fn panels(&self, d: &Dependency) -> Vec<telltale::internals::manifest::Panel> {
        // Its own title on the built-in row.
        let mut row = telltale::internals::model::dependency_row::panels(d, false);
        row[0].title = format!("{}: memo lookups/s", d.name);
        row
    }
}

#[derive(Object)]
struct Greeting {
    text: String,
}

#[derive(ApiResponse)]
enum GreetingResponse {
    #[oai(status = 200)]
    Ok(Json<Greeting>),
}

struct Greet;

impl Handler for Greet {
    type Options = NoOptions;
    type Path = Empty;
    type Query = Empty;
    type Body = Empty;
    type Response = GreetingResponse;
    type State = MemoClient;
    fn name(&self) -> &'static str {
        "greet"
    }
    fn setup(&self, _: NoOptions, ctx: &mut Setup<'_>) -> Result<MemoClient, SetupError> {
        ctx.dependency::<MemoClient>("cache")
    }
    async fn handle(&self, c: &MemoClient, _: Input<Empty, Empty, Empty>) -> GreetingResponse {
        GreetingResponse::Ok(Json(Greeting {
            text: c.0.to_string(),
        }))
    }
}

const MANIFEST: &str = r#"
service: { name: memo-svc, version: 0.0.1 }
dependencies:
  - { name: cache, kind: memo, url: "memo://local", check_every: 200ms }
endpoints:
  - { path: /greet, handler: greet, summary: Greet }
  - { path: /ready, handler: probe, summary: Ready, options: { probe: ready } }
  - { path: /metrics, handler: prometheus, summary: Metrics }
metrics:
  - { name: http_requests_total, type: counter, help: Requests., labels: [method, path, status], source: http.requests }
"#;

fn app() -> telltale::App {
    telltale::App::new().dependency_kind(Memo).handler(Greet)
}

/// validate: its name is known; a typo gets "did you mean".
fn validate_knows_the_kind_and_its_typo(dir: &std::path::Path, m: &str) {
    let ok = app().run_cli_from(["memo", "validate", "--manifest", m]);
    assert_eq!(ok, std::process::ExitCode::SUCCESS);
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, MANIFEST.replace("kind: memo", "kind: memoo")).unwrap();
    let code = app().run_cli_from(["memo", "validate", "--manifest", bad.to_str().unwrap()]);
    assert_eq!(code, std::process::ExitCode::from(1));
}

/// render: the same row and alerts as a built-in kind's, its own title.
fn render_gives_the_kind_a_built_ins_row_and_alerts(dir: &std::path::Path, m: &str) {
    let out = dir.join("gen");
    let code = app().run_cli_from([
        "memo",
        "render",
        "--manifest",
        m,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let dash = std::fs::read_to_string(out.join("grafana/dashboards/telltale.json")).unwrap();
    assert!(
        dash.contains("cache: memo lookups/s") && dash.contains("cache: p95"),
        "{dash}"
    );
    let tests = std::fs::read_to_string(out.join("prometheus/alerts.test.yml")).unwrap();
    assert!(tests.contains("CacheDependencyDown") && tests.contains("CacheDependencyErrors"));
    let t = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(out.join("prometheus/alerts.test.yml"))
        .output()
        .expect("promtool is required (Debian package prometheus)");
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_dependency_kind_takes_the_built_ins_path() {
    let dir = tempdir();
    let manifest = dir.path().join("manifest.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let m = manifest.to_str().unwrap().to_string();

    validate_knows_the_kind_and_its_typo(dir.path(), &m);
    render_gives_the_kind_a_built_ins_row_and_alerts(dir.path(), &m);

    // serve: the client in the handler, the health check behind /ready.
    let server = InProcess::serve("memo", &m, "/ready", app).await;
    let base = server.base.clone();
    let c = reqwest::Client::new();
    let r = c.get(format!("{base}/greet")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["text"], "hello from memo://local");
    let ready = |status: u16| {
        let c = c.clone();
        let base = base.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                let r = c.get(format!("{base}/ready")).send().await.unwrap();
                if r.status().as_u16() == status {
                    return r.json::<serde_json::Value>().await.unwrap();
                }
                assert!(Instant::now() < until, "/ready never answered {status}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    ready(200).await;
    HEALTHY.store(false, Ordering::SeqCst);
    let body = ready(503).await;
    assert_eq!(body["reason"], "dependency down: cache");
    let metrics = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("telltale_dependency_up{dependency=\"cache\"} 0"),
        "{metrics}"
    );
    HEALTHY.store(true, Ordering::SeqCst);
    ready(200).await;
    server.stop().await;
}
