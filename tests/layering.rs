//! The layout shows the data flow: `manifest` (parse, locate) → `model`
//! (validate) → `server`, `render`, `chaos`. Each stage folder imports only
//! the stages before it; `logging` is a utility below the server; the
//! built-in kinds (`plugins`) and the entry points (`app`, `cli`) sit on
//! top. This reads every `crate::…` path in `src/` (test modules aside)
//! and fails on an import that goes the wrong way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each top-level module of `src/` may import.
fn allowed() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        ("manifest", vec![]),
        ("term", vec![]),
        ("fetch", vec![]),
        ("model", vec!["manifest"]),
        ("traces", vec!["manifest"]),
        ("logging", vec!["manifest", "traces"]),
        ("server", vec!["manifest", "model", "logging", "traces"]),
        ("render", vec!["manifest", "model"]),
        ("chaos", vec!["manifest", "model", "term", "fetch"]),
        (
            "verify",
            vec!["manifest", "model", "render", "term", "fetch"],
        ),
        (
            "plugins",
            vec!["manifest", "model", "logging", "traces", "server", "render"],
        ),
        ("app", vec!["manifest", "model", "plugins", "cli", "term"]),
        (
            "cli",
            vec![
                "manifest", "model", "logging", "traces", "server", "render", "chaos", "verify",
                "plugins", "term",
            ],
        ),
        // The crate root: the public API, re-exported from the stages.
        ("lib", vec!["app", "manifest", "model", "plugins", "term"]),
        ("main", vec![]),
    ])
}

/// The `crate::X` modules `text` names outside its `#[cfg(test)]` module.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
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
fn stage_folders_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    let allowed = allowed();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(ok) = allowed.get(top.as_str()) else {
            wrong.push(format!(
                "{}: top-level module {top:?} has no place in the layering",
                rel.display()
            ));
            continue;
        };
        for m in imports(&std::fs::read_to_string(f).unwrap()) {
            if m != top && !ok.contains(&m.as_str()) {
                wrong.push(format!("{}: {top} imports crate::{m}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data flow:\n{}",
        wrong.join("\n")
    );
    assert!(files.len() > 40, "read only {} files", files.len());
}

#[test]
fn the_scanner_sees_imports_and_skips_comments_and_tests() {
    let text = "use crate::model::Model;\n// crate::server is only named here\nfn f() { crate::render::x(); }\n#[cfg(test)]\nmod tests { use crate::cli; }\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["model", "render"]);
}
