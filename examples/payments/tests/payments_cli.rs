//! The payments service's CLI: validation of its options, and its rendered
//! rules checked by promtool.

mod common;
use common::*;
use serde_json::Value;

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
