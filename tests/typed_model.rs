//! The typed model (issue 28): after the load, the manifest holds parsed
//! values, so nothing past `manifest/` parses a duration or a method from
//! text again. This reads every file of `src/` (test modules aside) and
//! fails on a parser call where none should be.

use std::path::Path;

/// Text that parses a duration or a method, and where it may appear
/// (an empty place: nowhere). `render/rules.rs` upper-cases the first
/// letter of a name (`CamelCase` alert names), and `logging/request.rs`
/// cuts a request's own method token for its log line: neither reads the
/// manifest.
const PARSERS: &[(&str, &str)] = &[
    ("parse_duration", "src/manifest/values.rs"),
    ("PromDuration::parse", "src/manifest/"),
    ("to_ascii_uppercase", "src/render/rules.rs"),
    ("Method::from_bytes", "src/logging/request.rs"),
    ("eq_ignore_ascii_case(\"GET", ""),
];

/// Every `.rs` file under `dir`, with its text before `#[cfg(test)]`.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            let rel = p
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap()
                .display()
                .to_string();
            out.push((rel, code));
        }
    }
}

#[test]
fn durations_and_methods_are_parsed_only_when_the_manifest_is_read() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut wrong = Vec::new();
    for (rel, code) in &files {
        for (needle, allowed) in PARSERS {
            // The lint reads PromQL range windows (`[5m]`) inside
            // expressions with the manifest's own duration parser.
            let lint_window = *needle == "PromDuration::parse" && rel == "src/model/lint/rules.rs";
            if code.contains(needle)
                && (allowed.is_empty() || !rel.starts_with(allowed))
                && !lint_window
            {
                wrong.push(format!("{rel}: {needle}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "parsing outside the manifest's load:\n{}",
        wrong.join("\n")
    );
}
