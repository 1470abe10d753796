//! Only `plugins/` knows kinds by name. A stage that needs something of a
//! handler, metric source or dependency asks its prepared plugin (its
//! roles, derived alerts, chaos traffic: `model::contrib`) instead of
//! comparing `endpoints[].handler` or `metrics[].source` with a name. This
//! reads every file of `src/` outside `src/plugins/` and fails on such a
//! comparison: `x.handler == "…"`, `"…" != m.source`, a `match` on one, or
//! `.source.starts_with(…)` and its kin.

use std::path::{Path, PathBuf};

/// The fields that name a kind.
const FIELDS: &[&str] = &[".handler", ".source"];

/// What after a field reads its value as a name.
const NAME_READS: &[&str] = &[
    "==",
    "!=",
    ".as_str()",
    ".as_ref()",
    ".starts_with(",
    ".ends_with(",
    ".contains(",
    ".eq(",
    ".eq_ignore_ascii_case(",
];

/// The lines of `text` (1-based) that compare a kind field with a name.
fn comparisons(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        for field in FIELDS {
            let mut from = 0;
            while let Some(at) = code[from..].find(field).map(|i| i + from) {
                from = at + field.len();
                let after = &code[from..];
                // `.sources`, `.handlers`, `.source_names`: another name.
                if after
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    continue;
                }
                let rest = after.trim_start();
                let before = code[..at]
                    .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || "_.&*()".contains(c))
                    .trim_end();
                let matched = rest.starts_with('{') && code[..at].contains("match ");
                if NAME_READS.iter().any(|r| rest.starts_with(r))
                    || before.ends_with("==")
                    || before.ends_with("!=")
                    || matched
                {
                    out.push((n + 1, line.trim().to_string()));
                }
            }
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_stage_outside_plugins_matches_a_kind_by_name() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    let mut found = Vec::new();
    let mut read = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if rel.starts_with("plugins") {
            continue;
        }
        read += 1;
        for (line, text) in comparisons(&std::fs::read_to_string(f).unwrap()) {
            found.push(format!("src/{}:{line}: {text}", rel.display()));
        }
    }
    assert!(
        found.is_empty(),
        "kinds matched by name outside src/plugins/ (ask the prepared plugin instead):\n{}",
        found.join("\n")
    );
    assert!(read > 40, "read only {read} files");
}

#[test]
fn the_scanner_sees_comparisons_and_skips_other_uses() {
    let flagged = [
        r#"if ep.handler == "fault" {"#,
        r#".find(|x| x.source == "http.requests")"#,
        r#"if m.metrics[i].source != "collection.below_threshold" {"#,
        r#"if "fault" == e.handler {"#,
        r#"e.handler == GRAFANA_HANDLER && open"#,
        r#"match (method, ep.handler.as_str()) {"#,
        r#"let kind = match metric.source.as_str() {"#,
        r#".filter(|x| x.source.starts_with("http."))"#,
        r#"match e.handler {"#,
    ];
    for line in flagged {
        assert_eq!(comparisons(line).len(), 1, "{line}");
    }
    let fine = [
        r#"registry.source(&metric.source)"#,
        r#"self.source.error(&at, msg)"#,
        r#"for (m, s) in model.sources.iter() {"#,
        r#"format!("handler kind {:?} needs a data file", ep.handler)"#,
        r#"// x.source == "http.requests" in a comment"#,
        r#"let names = registry.source_names();"#,
    ];
    for line in fine {
        assert!(comparisons(line).is_empty(), "{line}");
    }
}
