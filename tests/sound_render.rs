//! Sound rendering: no manifest value can change what a rendered file
//! means. One test per finding of the issue: Go templates in alert labels,
//! PromQL through objective names, U+2028 in the Kubernetes ConfigMaps,
//! and validate and render agreeing on every text.

mod common;

use common::{bin, copy_default_manifest, tempdir};
use std::path::Path;
use std::process::Command;

/// `validate` then `render` of the manifest at `m`; (validate's exit code
/// and stderr, render's exit code and stderr).
fn validate_and_render(m: &Path, out: &Path) -> ((i32, String), (i32, String)) {
    let run = |args: &[&str]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let m = m.to_str().unwrap();
    (
        run(&["validate", "-m", m]),
        run(&["render", "-m", m, "--out", out.to_str().unwrap()]),
    )
}

/// Replaces `from` with `to` in the manifest (which must contain `from`).
fn edit(m: &Path, from: &str, to: &str) {
    common::edit(m, from, to);
}

/// A hand-written alert appended to the demo manifest's `alerts:`.
fn alert(severity: &str) -> String {
    format!(
        "alerts:\n  - name: Injected\n    expr: up == 0\n    for: 1m\n    severity: {severity}\n    summary: s\n    test:\n      firing: [{{ series: 'up{{job=\"ecommerce-api\"}}', values: '0x10' }}]\n      quiet: [{{ series: 'up{{job=\"ecommerce-api\"}}', values: '1x10' }}]\n"
    )
}

#[test]
fn a_go_template_in_a_severity_is_a_located_error() {
    for severity in ["'{{ nope }}'", "'{{ query \"up\" }}'"] {
        let dir = tempdir();
        let m = copy_default_manifest(dir.path());
        edit(&m, "alerts:\n", &alert(severity));
        let ((code, err), (rcode, _)) = validate_and_render(&m, &dir.path().join("out"));
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("alerts[0].severity") && err.contains("is not a valid severity"),
            "{err}"
        );
        assert!(err.contains(&format!("{}:", m.display())), "located: {err}");
        assert_ne!(rcode, 0, "render refuses it too");
    }
    // metrics[].alert.severity likewise.
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    edit(
        &m,
        "alert: { name: LowStock }",
        "alert: { name: LowStock, severity: '{{ nope }}' }",
    );
    let ((code, err), _) = validate_and_render(&m, &dir.path().join("out"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(".alert.severity") && err.contains("not a valid severity"),
        "{err}"
    );
}

#[test]
fn an_objective_name_cannot_carry_promql() {
    for name in ["'availability\", slo=\"never'", "'x\"} or vector(1) #'"] {
        let dir = tempdir();
        let m = copy_default_manifest(dir.path());
        edit(
            &m,
            "  - name: availability\n",
            &format!("  - name: {name}\n"),
        );
        let ((code, err), (rcode, _)) = validate_and_render(&m, &dir.path().join("out"));
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("objectives[0].name") && err.contains("is not a valid objective name"),
            "{err}"
        );
        assert_ne!(rcode, 0);
    }
}

/// Text with U+2028 (and `---` after it) in a panel title, a panel
/// description and a data-file row: validate and render both succeed, and
/// every reader sees each ConfigMap as it was meant: the same keys, the
/// dashboard JSON and the data file byte for byte, nothing `immutable`.
#[test]
fn a_line_separator_cannot_break_a_configmap() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let evil = "Total\u{2028}evil.json: {}\u{2028}---\u{2028}immutable: true";
    edit(
        &m,
        "    - title: Total Requests\n",
        &format!("    - title: \"{}\"\n", evil.replace('\u{2028}', "\\u2028")),
    );
    let products = dir.path().join("data/products.yaml");
    let rows = std::fs::read_to_string(&products).unwrap();
    std::fs::write(
        &products,
        rows.replacen(
            "name: Wireless Mouse",
            "name: \"Wireless\u{2028}immutable: true\u{2028}Mouse\"",
            1,
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let ((code, err), (rcode, rerr)) = validate_and_render(&m, &out);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rcode, 0, "{rerr}");
    let k = out.join("kubernetes");
    // PyYAML (YAML 1.1: U+2028 is a line break there) and serde_yaml.
    let check = format!(
        r#"
import json, sys, yaml
dash = yaml.safe_load(open("{k}/grafana-dashboard.yaml"))
assert "immutable" not in dash, dash.keys()
assert list(dash["data"].keys()) == ["{uid}.json"], list(dash["data"].keys())
want = open("{out}/grafana/dashboards/{uid}.json").read()
assert dash["data"]["{uid}.json"] == want
titles = [p["title"] for p in json.loads(want)["panels"]]
assert {evil} in titles, titles
cm = yaml.safe_load(open("{k}/manifest-configmap.yaml"))
assert "immutable" not in cm, cm.keys()
assert cm["data"]["data.products.yaml"] == open("{dir}/data/products.yaml").read()
assert cm["data"]["manifest.yaml"] == open("{m}").read()
print("ok")
"#,
        k = k.display(),
        out = out.display(),
        dir = dir.path().display(),
        m = m.display(),
        uid = "ecommerce-api",
        evil = serde_json::to_string(evil).unwrap(),
    );
    let py = Command::new(common::venv_bin("python3"))
        .args(["-c", &check])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "PyYAML: {}{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );
    for f in ["grafana-dashboard.yaml", "manifest-configmap.yaml"] {
        let v: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(k.join(f)).unwrap()).unwrap();
        assert!(v.get("immutable").is_none(), "{f}");
        assert_eq!(
            v["data"].as_mapping().unwrap().len(),
            if f.starts_with("grafana") { 1 } else { 3 },
            "{f}"
        );
    }
}

/// `s` as a YAML double-quoted scalar with every character outside
/// printable ASCII written as `\uXXXX` (how such text is put in a YAML file).
fn yaml_escaped(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out + "\""
}

/// Texts that validate accepted and render refused as "(template bug)":
/// U+FFFF, DEL, C1 controls, U+2028 followed by `---`, in every kind of
/// place (a panel title, a description, a summary, the service's
/// description). Now both accept them, and every file parses.
#[test]
fn validate_and_render_agree_on_any_text() {
    for text in [
        "a\u{ffff}b",
        "del\u{7f}",
        "c1\u{85}\u{9b}x",
        "sep\u{2028}---\u{2028}x",
        "nel\u{85}---",
    ] {
        let dir = tempdir();
        let m = copy_default_manifest(dir.path());
        let quoted = yaml_escaped(text);
        edit(
            &m,
            "    - title: Total Requests\n",
            &format!("    - title: {quoted}\n"),
        );
        edit(
            &m,
            "  description: Demo e-commerce API instrumented by telltale\n",
            &format!("  description: {quoted}\n"),
        );
        edit(
            &m,
            "    summary: List products\n",
            &format!("    summary: {quoted}\n"),
        );
        let out = dir.path().join("out");
        let ((code, err), (rcode, rerr)) = validate_and_render(&m, &out);
        assert_eq!(
            (code, rcode),
            (0, 0),
            "{text:?}: validate {err}\nrender {rerr}"
        );
        let dash =
            std::fs::read_to_string(out.join("grafana/dashboards/ecommerce-api.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&dash).unwrap();
        assert!(
            v["panels"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["title"] == text),
            "{text:?} round-trips into the dashboard"
        );
    }
}
