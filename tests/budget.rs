//! The series budget: `validate` prints it, `service.series_limit` caps it
//! with a located error naming the largest metrics, and the rendered scrape
//! config enforces it through `sample_limit`.
mod common;
use common::*;

/// The total `validate` prints for the manifest at `m`.
fn total(m: &std::path::Path, dir: &std::path::Path) -> usize {
    let (st, out, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir);
    assert!(st.success(), "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("series budget: at most "))
        .unwrap_or_else(|| panic!("no budget line in {out}"));
    line["series budget: at most ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn an_app_metric_adds_exactly_its_declared_series() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let before = total(&m, dir.path());
    edit(
        &m,
        "\nmetrics:\n",
        "\nmetrics:\n  - name: orders_total\n    type: counter\n    help: Orders.\n    source: app\n    labels: [{name: payment, values: [card, cash, voucher]}, {name: channel, values: [web, app], fallback: web}]\n",
    );
    // (3 values + `other`) × (2 values, the fallback among them).
    assert_eq!(total(&m, dir.path()), before + 4 * 2);
}

#[test]
fn over_the_series_limit_is_a_located_error_naming_the_largest_metrics() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let budget = total(&m, dir.path());
    edit(
        &m,
        "  shutdown_timeout_seconds: 10\n",
        &format!(
            "  shutdown_timeout_seconds: 10\n  series_limit: {}\n",
            budget - 1
        ),
    );
    let (st, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir.path());
    assert_eq!(st.code(), Some(1), "{err}");
    let want = format!(
        "service.series_limit: the metrics can expose up to {budget} series, over the limit of {}",
        budget - 1
    );
    assert!(err.contains(&want), "{err}");
    assert!(err.contains("largest: http_requests_total"), "{err}");
    let line = std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("  series_limit:"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(":{line}:17:")),
        "located at the value: {err}"
    );
    edit(
        &m,
        &format!("series_limit: {}", budget - 1),
        &format!("series_limit: {budget}"),
    );
    assert_eq!(total(&m, dir.path()), budget);
}

#[test]
fn the_scrape_config_sets_sample_limit_from_the_budget() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let budget = total(&m, dir.path());
    let out = dir.path().join("gen");
    let (st, o, e) = run(
        &[
            "render",
            "--manifest",
            m.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(st.success(), "{o}{e}");
    let cfg: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(out.join("prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();
    let job = &cfg["scrape_configs"][0];
    assert_eq!(job["job_name"], "ecommerce-api");
    let limit = job["sample_limit"].as_u64().unwrap() as usize;
    assert_eq!(limit, (budget as f64 * 1.25).ceil() as usize);
    // The real server stays under it, at start and after mixed traffic.
    let srv = Server::start(&m, dir.path());
    for p in [
        "/products",
        "/users",
        "/nope",
        "/error",
        "/products?limit=x",
    ] {
        let _ = http_get(&srv.url(p));
    }
    let samples = parse_metrics(&http_get(&srv.url("/metrics"))).len();
    assert!(
        samples <= budget,
        "{samples} samples over the budget of {budget}"
    );
    assert!(srv.stop().success());
}
