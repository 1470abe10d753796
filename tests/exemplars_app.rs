//! A `source: app` counter and histogram updated by a handler of one's own
//! inside a sampled request carry that request's exemplar in `/metrics`
//! (OpenMetrics, read by the official Python parser); an unsampled
//! request's updates count but leave no exemplar. One test: the process
//! holds one logger and one server.

mod common;
use common::in_process::{Answer, InProcess};
use common::*;
use serde_json::Value;
use telltale::{AppCounter, AppHistogram, Empty, Handler, Input, NoOptions, Setup, SetupError};

struct Order;

impl Handler for Order {
    type Options = NoOptions;
    type Path = Empty;
    type Query = Empty;
    type Body = Empty;
    type Response = Answer;
    type State = (AppCounter<1>, AppHistogram<0>);

    fn name(&self) -> &'static str {
        "order"
    }

    fn setup(&self, _: NoOptions, ctx: &mut Setup<'_>) -> Result<Self::State, SetupError> {
        Ok((
            ctx.counter("orders_total", ["pay"])?,
            ctx.histogram("basket_euros", [])?,
        ))
    }

    async fn handle(&self, st: &Self::State, input: Input<Empty, Empty, Empty>) -> Answer {
        let pay = input.request.header("x-pay").unwrap_or("card").to_string();
        st.0.inc([pay.as_str()]);
        st.1.observe([], 42.0);
        Answer::ok()
    }
}

const MANIFEST: &str = r#"
service: { name: shop-exemplars, version: 0.0.1 }
endpoints:
  - { path: /order, handler: order, summary: Order }
  - { path: /metrics, handler: prometheus, summary: Metrics }
metrics:
  - { name: orders_total, type: counter, help: Orders., source: app, labels: [{name: pay, values: [card, cash]}] }
  - { name: basket_euros, type: histogram, help: Basket., source: app, buckets: [10, 50, 100] }
logging: { dir: logs, file: shop }
tracing: { endpoint: "http://127.0.0.1:9" }
"#;

const SAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";

/// A card order in a sampled request, a cash one in an unsampled request.
async fn a_sampled_and_an_unsampled_order(c: &reqwest::Client, base: &str) {
    let r = c
        .get(format!("{base}/order"))
        .header("traceparent", format!("00-{SAMPLED}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{base}/order"))
        .header("x-pay", "cash")
        .header(
            "traceparent",
            "00-0000000000000000000000000000feed-00000000000000dd-00",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The samples of `family` in the parsed OpenMetrics `om` (read from `text`).
fn samples(om: &Value, text: &str, family: &str) -> Vec<Value> {
    om.as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == family)
        .unwrap_or_else(|| panic!("no {family}:\n{text}"))["samples"]
        .as_array()
        .unwrap()
        .clone()
}

/// The counter: both orders counted, only the card one (sampled) with an
/// exemplar, whose span is the server's.
fn the_counter_carries_the_sampled_requests_exemplar(om: &Value, text: &str) {
    let orders = samples(om, text, "orders");
    let by_pay = |pay: &str| {
        orders
            .iter()
            .find(|s| s["labels"]["pay"] == pay)
            .unwrap_or_else(|| panic!("no pay={pay}:\n{text}"))
            .clone()
    };
    let card = by_pay("card");
    assert_eq!(card["value"], 1.0);
    assert_eq!(card["exemplar"]["labels"]["trace_id"], SAMPLED, "{text}");
    let span = card["exemplar"]["labels"]["span_id"].as_str().unwrap();
    assert!(
        span.len() == 16 && span != "b7ad6b7169203331",
        "the server's span: {span}"
    );
    let cash = by_pay("cash");
    assert_eq!(cash["value"], 1.0, "counted");
    assert!(cash["exemplar"].is_null(), "unsampled: {text}");
}

/// The histogram: one exemplar, the sampled request's, in its bucket.
fn the_histogram_carries_the_sampled_requests_exemplar(om: &Value, text: &str) {
    let with: Vec<(String, String)> = samples(om, text, "basket_euros")
        .iter()
        .filter(|s| !s["exemplar"].is_null())
        .map(|s| {
            (
                s["labels"]["le"].as_str().unwrap().to_string(),
                s["exemplar"]["labels"]["trace_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(with, [("50".to_string(), SAMPLED.to_string())], "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_metrics_carry_the_sampled_requests_exemplar() {
    let dir = tempdir();
    std::fs::write(dir.path().join("manifest.yaml"), MANIFEST).unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let server = InProcess::serve("shop", "manifest.yaml", "/metrics", || {
        telltale::App::new().handler(Order)
    })
    .await;
    let base = server.base.clone();
    let c = reqwest::Client::new();
    a_sampled_and_an_unsampled_order(&c, &base).await;

    let text = c
        .get(format!("{base}/metrics"))
        .header("accept", PROMETHEUS_ACCEPT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let om = python_parse(&text, true);
    the_counter_carries_the_sampled_requests_exemplar(&om, &text);
    the_histogram_carries_the_sampled_requests_exemplar(&om, &text);

    server.stop().await;
}
