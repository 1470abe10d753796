//! Bad-manifest fixtures: each file in tests/fixtures/bad says what it
//! expects (`# expect: <path>: <message>`) and marks the line each error must
//! point at with `# <-E`, in the same order.

mod common;
use common::*;
use std::path::{Path, PathBuf};

struct Fixture {
    path: PathBuf,
    expects: Vec<String>,
    lines: Vec<usize>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = repo().join("tests/fixtures/bad");
    let mut out: Vec<Fixture> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let expects = text
                .lines()
                .filter_map(|l| l.strip_prefix("# expect: "))
                .map(|l| l.split("   # <-E").next().unwrap().trim_end().to_string())
                .collect();
            let lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains("# <-E"))
                .map(|(i, _)| i + 1)
                .collect();
            Fixture {
                path,
                expects,
                lines,
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[test]
fn there_are_at_least_twenty_fixtures() {
    assert!(fixtures().len() >= 20, "only {} fixtures", fixtures().len());
}

#[test]
fn every_fixture_reports_its_message_at_its_line() {
    let mut failures = Vec::new();
    for fx in fixtures() {
        let name = fx.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!fx.expects.is_empty(), "{name}: no `# expect:` line");
        assert_eq!(
            fx.expects.len(),
            fx.lines.len(),
            "{name}: each `# expect:` needs one `# <-E` marker"
        );
        let diags = match telltale::internals::model::open(
            Some(&fx.path),
            &telltale::KindRegistry::builtin(),
        ) {
            Ok(_) => {
                failures.push(format!("{name}: manifest was accepted"));
                continue;
            }
            Err(d) => d.0,
        };
        for (expect, line) in fx.expects.iter().zip(&fx.lines) {
            let hit = diags.iter().any(|d| {
                let shown = d.to_string();
                d.line == *line
                    && d.file.ends_with(&name)
                    && shown.contains(expect.as_str())
                    && shown.starts_with(&format!("{}:{}:{}: ", d.file, d.line, d.column))
            });
            if !hit {
                failures.push(format!(
                    "{name}: expected line {line}: {expect}\n  got:\n    {}",
                    diags
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn validate_prints_every_error_and_exits_1() {
    let f = repo().join("tests/fixtures/bad/multiple_errors.yaml");
    let (st, out, err) = run(
        &["validate", "--manifest", f.to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(st.code(), Some(1), "stdout: {out}\nstderr: {err}");
    let located: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("multiple_errors.yaml:"))
        .collect();
    assert!(
        located.len() >= 4,
        "expected all four errors at once:\n{err}"
    );
    for want in [
        ":8:9: service.port",
        ":11:14: endpoints[0].handler",
        ":13:11: metrics[0].name",
        ":20:14: metrics[1].labels[0]",
    ] {
        assert!(err.contains(want), "missing {want} in:\n{err}");
    }
}

#[test]
fn serve_refuses_to_start_with_the_same_messages() {
    let f = repo().join("tests/fixtures/bad/multiple_errors.yaml");
    let (_, _, validate_err) = run(
        &["validate", "--manifest", f.to_str().unwrap()],
        Path::new("."),
    );
    let (st, out, err) = run(
        &["serve", "--manifest", f.to_str().unwrap(), "--port", "0"],
        Path::new("."),
    );
    assert_eq!(st.code(), Some(1));
    assert!(!out.contains("listening"), "server must not start: {out}");
    for line in validate_err
        .lines()
        .filter(|l| l.contains("multiple_errors.yaml:"))
    {
        assert!(err.contains(line), "serve did not print {line:?}:\n{err}");
    }
}

#[test]
fn the_shipped_manifest_is_valid() {
    let (st, out, err) = run(
        &[
            "validate",
            "--manifest",
            repo().join("manifest.yaml").to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert!(st.success(), "{out}{err}");
    assert!(out.contains(": ok ("), "{out}");
}

#[test]
fn the_embedded_manifest_is_the_repo_manifest() {
    assert_eq!(
        telltale::internals::manifest::load::EMBEDDED_MANIFEST,
        std::fs::read_to_string(repo().join("manifest.yaml")).unwrap()
    );
    // And it validates without any file on disk (data files embedded too).
    let loaded = telltale::internals::manifest::load_embedded().unwrap();
    telltale::internals::model::validate(loaded, &telltale::KindRegistry::builtin()).unwrap();
}

/// A typo in a metric's `type` is that metric's error alone: the metric is
/// still known to the rest of the manifest (the datasource's `error_burst`
/// events need its `http.requests` counter), so nothing else is reported.
#[test]
fn a_metric_type_typo_is_reported_without_follow_on_errors() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    edit(
        &manifest,
        "  - name: http_requests_total\n    type: counter\n",
        "  - name: http_requests_total\n    type: countr\n",
    );
    let diags =
        match telltale::internals::model::open(Some(&manifest), &telltale::KindRegistry::builtin())
        {
            Ok(_) => panic!("a bad type was accepted"),
            Err(d) => d.0,
        };
    let shown: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(
        shown[0].contains("metrics[0].type: unknown variant `countr`"),
        "{shown:#?}"
    );
}
