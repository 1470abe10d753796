//! The manifest's JSON Schema: generated from the manifest's types
//! (`telltale schema`), committed as generated/manifest.schema.json, named
//! by manifest.yaml for editors, and checked by an independent validator
//! (check-jsonschema): the shipped manifests pass, bad fixtures fail.
mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

fn check_jsonschema(files: &[std::path::PathBuf]) -> (bool, String) {
    outcome(
        Command::new(venv_bin("check-jsonschema"))
            .arg("--schemafile")
            .arg(repo().join("generated/manifest.schema.json"))
            .args(files),
    )
}

#[test]
fn the_schema_command_prints_the_committed_schema() {
    let (st, out, err) = run(&["schema"], &repo());
    assert!(st.success(), "{err}");
    let committed = std::fs::read_to_string(repo().join("generated/manifest.schema.json")).unwrap();
    assert_eq!(
        out, committed,
        "generated/manifest.schema.json is stale: run telltale render"
    );
    let first = std::fs::read_to_string(repo().join("manifest.yaml")).unwrap();
    assert!(
        first.starts_with("# yaml-language-server: $schema=generated/manifest.schema.json\n"),
        "manifest.yaml names its schema for editors"
    );
}

#[test]
fn descriptions_come_from_the_doc_comments() {
    let schema: Value = serde_json::from_str(&run(&["schema"], &repo()).1).unwrap();
    let defs = &schema["$defs"];
    // `Logging.dir`'s doc comment, and `Metric.alert`'s.
    let dir = defs["Logging"]["properties"]["dir"]["description"]
        .as_str()
        .unwrap();
    assert!(dir.starts_with("Directory of the JSON log files"), "{dir}");
    let alert = &defs["Metric"]["properties"]["alert"];
    assert!(alert.to_string().contains("tuned or turned off"), "{alert}");
    // Unknown keys are errors, as in validate.
    assert_eq!(defs["Service"]["additionalProperties"], false);
    // Every section of the schema has its table in the README's manifest reference.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for section in schema["properties"].as_object().unwrap().keys() {
        assert!(
            readme.contains(&format!("### `{section}")),
            "README's manifest reference has no section for `{section}`"
        );
    }
}

#[test]
fn the_shipped_manifests_pass_and_bad_ones_fail_an_independent_validator() {
    let root = repo();
    let (ok, out) = check_jsonschema(&[
        root.join("manifest.yaml"),
        root.join("examples/shop/manifest.yaml"),
        root.join("examples/payments/manifest.yaml"),
    ]);
    assert!(ok, "{out}");
    for bad in [
        "wrong_type.yaml",
        "unknown_field.yaml",
        "unknown_section.yaml",
        "missing_service.yaml",
    ] {
        let (ok, out) = check_jsonschema(&[root.join("tests/fixtures/bad").join(bad)]);
        assert!(!ok, "{bad} passed the schema:\n{out}");
    }
}
