//! Random text in every free-text field of a manifest: for each case either
//! `validate` refuses it with a location, or render succeeds, every file it
//! writes parses (YAML, JSON), and the value is found intact in the file
//! it belongs to. In process, 10,000 cases; promtool checks the config,
//! the rules and their unit tests on a sample of 200 (every payload of the
//! issue among them).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_yaml::Value;
use std::collections::BTreeMap;
use telltale::internals::manifest::load_str;
use telltale::internals::model::{validate, KindRegistry};

const BASE: &str = r#"
service:
  name: prop
  version: 1.0.0
  description: svc
endpoints:
  - path: /health
    method: GET
    summary: Health
    description: health probe
    tags: [probes]
    handler: probe
    options: { probe: health }
  - path: /metrics
    method: GET
    summary: Metrics
    handler: prometheus
metrics:
  - name: http_requests_total
    type: counter
    help: Requests.
    labels: [method, path, status]
    source: http.requests
  - name: http_request_duration_seconds
    type: histogram
    help: Durations.
    labels: [method, path]
    buckets: [0.1, 0.5, 1]
    source: http.duration
dashboard:
  uid: prop
  title: Prop
  refresh: 10s
  time_from: now-1h
  panels:
    - title: Rate
      description: a panel
      type: timeseries
      unit: reqps
      datasource: prometheus
      targets:
        - expr: sum(rate(http_requests_total{job="$job"}[$__rate_interval]))
          legend: "{{path}}"
objectives:
  - name: availability
    type: availability
    target: 0.995
    metric: http_requests_total
    window: 30d
alerts:
  - name: Down
    expr: up == 0
    for: 1m
    severity: critical
    summary: it is down
    description: really down
    test:
      firing: [{ series: 'up{job="prop"}', values: '0x10' }]
      quiet: [{ series: 'up{job="prop"}', values: '1x10' }]
      labels: { job: prop }
logging:
  file: telltale
stack:
  datasources: { prometheus: p, loki: l, json: j }
kubernetes:
  namespace: shop
"#;

/// A field: its path in the manifest, and the rendered file (prefix) that
/// must hold its text, if any.
struct Field {
    path: &'static [Key],
    file: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum Key {
    K(&'static str),
    I(usize),
}
use Key::{I, K};

const FIELDS: &[Field] = &[
    Field {
        path: &[K("service"), K("description")],
        file: None,
    },
    Field {
        path: &[K("endpoints"), I(0), K("summary")],
        file: None,
    },
    Field {
        path: &[K("endpoints"), I(0), K("description")],
        file: None,
    },
    Field {
        path: &[K("endpoints"), I(0), K("tags"), I(0)],
        file: None,
    },
    Field {
        path: &[K("metrics"), I(0), K("help")],
        file: None,
    },
    Field {
        path: &[K("dashboard"), K("title")],
        file: Some("grafana/dashboards/"),
    },
    Field {
        path: &[K("dashboard"), K("uid")],
        file: Some("grafana/dashboards/"),
    },
    Field {
        path: &[K("dashboard"), K("refresh")],
        file: Some("grafana/dashboards/"),
    },
    Field {
        path: &[K("dashboard"), K("time_from")],
        file: Some("grafana/dashboards/"),
    },
    Field {
        path: &[K("dashboard"), K("panels"), I(0), K("title")],
        file: Some("grafana/dashboards/"),
    },
    Field {
        path: &[K("dashboard"), K("panels"), I(0), K("description")],
        file: Some("grafana/dashboards/"),
    },
    Field {
        path: &[
            K("dashboard"),
            K("panels"),
            I(0),
            K("targets"),
            I(0),
            K("legend"),
        ],
        file: Some("grafana/dashboards/"),
    },
    Field {
        path: &[K("objectives"), I(0), K("name")],
        file: Some("prometheus/alerts.yml"),
    },
    Field {
        path: &[K("alerts"), I(0), K("name")],
        file: Some("prometheus/alerts.yml"),
    },
    Field {
        path: &[K("alerts"), I(0), K("severity")],
        file: Some("prometheus/alerts.yml"),
    },
    Field {
        path: &[K("alerts"), I(0), K("summary")],
        file: Some("prometheus/alerts.yml"),
    },
    Field {
        path: &[K("alerts"), I(0), K("description")],
        file: Some("prometheus/alerts.yml"),
    },
    Field {
        path: &[K("alerts"), I(0), K("expr")],
        file: Some("prometheus/alerts.yml"),
    },
    Field {
        path: &[K("stack"), K("datasources"), K("prometheus")],
        file: Some("grafana/provisioning/datasources/"),
    },
    Field {
        path: &[K("kubernetes"), K("namespace")],
        file: Some("kubernetes/deployment.yaml"),
    },
    Field {
        path: &[K("logging"), K("file")],
        file: None,
    },
];

/// The issue's payloads.
const PAYLOADS: &[&str] = &[
    "{{ nope }}",
    "{{ query \"up\" }}",
    "\"}",
    "availability\", slo=\"never",
    "\n",
    "a\nb: c",
    "\u{2028}",
    "\u{2029}",
    "\u{2028}---",
    "\u{ffff}",
    "\u{7f}",
    "\u{85}",
    "\u{9b}",
    "---",
    "$",
    "${HOME}",
    "{{ $value }}",
    "{{ $labels.job }}",
];

/// Fragments random text is made of (besides any character).
const PIECES: &[&str] = &[
    "{{", "}}", "\"", "'", "\\", ": ", "# ", "- ", "|", ">", "&a", "*a", "!!str", "%", "@", "`",
    "\t", "\r", "{", "}", "[", "]", ",", "=", "~", "ok", "x", " ",
];

fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(PAYLOADS).prop_map(str::to_string),
        3 => proptest::sample::select(PIECES).prop_map(str::to_string),
        2 => any::<char>().prop_map(|c| c.to_string()),
        2 => "[a-z]{1,6}",
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

fn set(root: &mut Value, path: &[Key], text: &str) {
    let mut at = root;
    for k in path {
        at = match k {
            K(name) => at.get_mut(*name),
            I(i) => at.get_mut(*i),
        }
        .expect("the field is in BASE");
    }
    *at = Value::String(text.to_string());
}

/// The manifest text with `text` at `field`.
fn manifest(field: &Field, text: &str) -> String {
    let mut root: Value = serde_yaml::from_str(BASE).unwrap();
    set(&mut root, field.path, text);
    serde_yaml::to_string(&root).unwrap()
}

impl Key {
    fn name(&self) -> String {
        match self {
            K(n) => n.to_string(),
            I(i) => i.to_string(),
        }
    }
}

/// What a case came to.
enum Outcome {
    Refused,
    Rendered(BTreeMap<String, String>),
}

/// Validates and renders; checks every file parses and the value is in
/// its file.
fn case(registry: &KindRegistry, field: &Field, text: &str) -> Result<Outcome, TestCaseError> {
    let src = manifest(field, text);
    let loaded = match load_str("prop.yaml", &src, None) {
        Ok(l) => l,
        Err(f) => return located(&f.diagnostics.to_string(), text),
    };
    let model = match validate(loaded, registry) {
        Ok(m) => m,
        Err(d) => return located(&d.to_string(), text),
    };
    let files = telltale::internals::render::render_all(&model, String::from("../logs"))
        .map_err(|e| TestCaseError::fail(format!("{text:?}: validated, but render failed: {e}")))?;
    let mut leaves_of_field = Vec::new();
    for (path, body) in &files {
        let parsed: serde_json::Value = if path.ends_with(".json") {
            serde_json::from_str(body)
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {path} is not JSON: {e}")))?
        } else if path.ends_with(".yml") || path.ends_with(".yaml") {
            serde_yaml::from_str(body)
                .map_err(|e| TestCaseError::fail(format!("{text:?}: {path} is not YAML: {e}")))?
        } else {
            continue;
        };
        if field.file.is_some_and(|f| path.starts_with(f)) {
            strings(&parsed, &mut leaves_of_field);
        }
    }
    if field.file.is_some() && !text.is_empty() {
        let found = leaves_of_field
            .iter()
            .any(|l| l.replace("{{ \"{{\" }}", "{{").contains(text));
        prop_assert!(found, "{text:?} is not intact in {:?}", field.file);
    }
    Ok(Outcome::Rendered(files))
}

/// A refusal must be located: `file:line:column`.
fn located(msg: &str, text: &str) -> Result<Outcome, TestCaseError> {
    let ok = msg.lines().all(|l| {
        let mut parts = l.splitn(4, ':');
        parts.next() == Some("prop.yaml")
            && parts.next().is_some_and(|n| n.parse::<usize>().is_ok())
            && parts.next().is_some_and(|n| n.parse::<usize>().is_ok())
            || !l.starts_with("prop.yaml")
    }) && msg.starts_with("prop.yaml:");
    prop_assert!(ok, "{text:?}: a refusal without a location: {msg}");
    Ok(Outcome::Refused)
}

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

#[test]
fn ten_thousand_random_texts_are_refused_with_a_location_or_rendered_intact() {
    let registry = KindRegistry::builtin();
    let mut runner = TestRunner::new(Config {
        cases: 10_000,
        failure_persistence: None,
        ..Config::default()
    });
    let (refused, rendered) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let strategy = (0..FIELDS.len(), text());
    runner
        .run(&strategy, |(f, t)| {
            match case(&registry, &FIELDS[f], &t)? {
                Outcome::Refused => refused.set(refused.get() + 1),
                Outcome::Rendered(_) => rendered.set(rendered.get() + 1),
            }
            Ok(())
        })
        .unwrap();
    let (refused, rendered) = (refused.get(), rendered.get());
    eprintln!("{rendered} rendered, {refused} refused");
    assert!(
        rendered > 1_000 && refused > 1_000,
        "both outcomes are exercised"
    );
}

fn promtool(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let o = std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (scripts/install-test-deps installs it)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Every payload in every field, then random texts, until 200 cases
/// rendered: promtool checks the config and the rules, and runs the rules'
/// unit tests, on each.
#[test]
fn promtool_accepts_what_renders_from_a_sample_including_every_payload() {
    let registry = KindRegistry::builtin();
    let mut runner = TestRunner::deterministic();
    let strategy = (0..FIELDS.len(), text());
    let mut cases: Vec<(usize, String)> = (0..FIELDS.len())
        .flat_map(|f| PAYLOADS.iter().map(move |p| (f, format!("x{p}y"))))
        .collect();
    let mut checked = 0;
    let mut i = 0;
    while checked < 200 {
        let (f, t) = if i < cases.len() {
            cases[i].clone()
        } else {
            let v = strategy.new_tree(&mut runner).unwrap().current();
            cases.push(v.clone());
            v
        };
        i += 1;
        if i > 20_000 {
            panic!("only {checked} of 200 cases rendered");
        }
        let Outcome::Rendered(files) = case(&registry, &FIELDS[f], &t).unwrap() else {
            continue;
        };
        // Only the cases whose text reaches the Prometheus files (and one
        // in ten of the others) are worth promtool's time.
        let reaches = FIELDS[f].file.is_some_and(|p| p.starts_with("prometheus/"));
        if !reaches && i % 10 != 0 && i > PAYLOADS.len() * FIELDS.len() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in &files {
            if path.starts_with("prometheus/") {
                let p = dir.path().join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, body).unwrap();
            }
        }
        let prom = dir.path().join("prometheus");
        for args in [
            &["check", "config", "prometheus.yml"][..],
            &["check", "rules", "alerts.yml"][..],
            &["test", "rules", "alerts.test.yml"][..],
        ] {
            let (ok, out) = promtool(args, &prom);
            assert!(
                ok,
                "{:?} = {t:?}: promtool {args:?}:\n{out}",
                FIELDS[f].path.iter().map(Key::name).collect::<Vec<_>>()
            );
        }
        checked += 1;
    }
}
