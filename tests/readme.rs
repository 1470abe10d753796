//! README.md stays a user manual: short enough to read, every link resolves
//! (anchors to its own headings, relative paths to files of the repository),
//! and nothing links outside the repository. The profiling history lives in
//! bench/NOTES.md, which must exist.
//!
//! Plain std: a small Markdown scanner, good enough for this README. Fenced
//! code blocks hold no headings and no links; inline code holds no links.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

const MAX_README_LINES: usize = 500;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A line that opens or closes a fenced code block (```` ``` ```` or `~~~`,
/// indented by at most three spaces).
fn is_fence(line: &str) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = line.trim_start_matches(' ');
    indent <= 3 && (rest.starts_with("```") || rest.starts_with("~~~"))
}

/// The document's lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if is_fence(line) {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// `line` with its inline code spans removed: a run of N backticks up to the
/// next run of exactly N backticks. An unclosed run is kept as text.
fn strip_inline_code(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'`' {
            let next = line[i..].find('`').map_or(b.len(), |n| i + n);
            out.push_str(&line[i..next]);
            i = next;
            continue;
        }
        let run = line[i..].bytes().take_while(|&c| c == b'`').count();
        let mut j = i + run;
        let mut closed = None;
        while j < b.len() {
            if b[j] == b'`' {
                let r = line[j..].bytes().take_while(|&c| c == b'`').count();
                if r == run {
                    closed = Some(j + r);
                    break;
                }
                j += r;
            } else {
                j += 1;
            }
        }
        match closed {
            Some(end) => {
                out.push(' ');
                i = end;
            }
            None => {
                out.push_str(&line[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// The text of an ATX heading (`# ...` to `###### ...`), without a closing `#` run.
fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.bytes().take_while(|&c| c == b'#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let text = rest.trim();
    // A closing run of `#` counts only after a space (`# C#` keeps its `#`).
    let stripped = text.trim_end_matches('#');
    if stripped.is_empty() || stripped.ends_with([' ', '\t']) {
        Some(stripped.trim_end())
    } else {
        Some(text)
    }
}

/// GitHub's anchor slug of a heading: lowercase, keep alphanumerics, spaces,
/// `-` and `_`, then spaces become `-`.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor of a document, in order; a repeated slug gets `-1`, `-2`, ...
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (_, line) in prose_lines(text) {
        let Some(h) = heading_text(line) else {
            continue;
        };
        let base = slug(h);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor.clone());
        out.push(anchor);
    }
    out
}

/// One `[text](target)` link.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    text: String,
    target: String,
}

/// Every inline link outside code: `[text](target)` or `[text](target "title")`.
fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    for (n, raw) in prose_lines(text) {
        let line = strip_inline_code(raw);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let before = &rest[..at];
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else { break };
            if let Some(open) = before.rfind('[') {
                let target = after[..close].split_whitespace().next().unwrap_or("");
                let target = target.trim_start_matches('<').trim_end_matches('>');
                out.push(Link {
                    line: n,
                    text: before[open + 1..].to_string(),
                    target: target.to_string(),
                });
            }
            rest = &after[close + 1..];
        }
    }
    out
}

/// `<http...>` autolinks outside code (links by another syntax).
fn autolinks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in prose_lines(text) {
        let line = strip_inline_code(raw);
        for (i, _) in line.match_indices("<http") {
            let end = line[i..].find('>').map_or(line.len(), |e| i + e + 1);
            out.push((n, line[i..end].to_string()));
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    let t = target.to_ascii_lowercase();
    t.starts_with("http://") || t.starts_with("https://")
}

/// `path#fragment` → (`path`, `fragment`).
fn split_fragment(target: &str) -> (&str, Option<&str>) {
    match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    }
}

// ---- the helpers themselves ----

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Manifest reference"), "manifest-reference");
    assert_eq!(slug("`service`"), "service");
    assert_eq!(slug("`endpoints[]`"), "endpoints");
    assert_eq!(slug("What bench/run measures"), "what-benchrun-measures");
    assert_eq!(slug("Promtail or Alloy"), "promtail-or-alloy");
    assert_eq!(
        slug("What was run for real here, and what was only validated"),
        "what-was-run-for-real-here-and-what-was-only-validated"
    );
    assert_eq!(slug("snake_case and-dash"), "snake_case-and-dash");
}

#[test]
fn duplicate_headings_are_numbered_and_fenced_ones_ignored() {
    let doc = "# A\n## Intro\n```sh\n# Intro\n```\n### Intro\n## Intro ##\n## C#\n";
    assert_eq!(anchors(doc), vec!["a", "intro", "intro-1", "intro-2", "c"]);
    assert_eq!(heading_text("## C#"), Some("C#"));
    assert_eq!(heading_text("#hashtag"), None);
}

#[test]
fn links_in_code_are_ignored() {
    let doc =
        "see [a](#a) and `[b](#b)` and ``x `[c](c.md)` y``\n```\n[d](d.md)\n```\n[e](e.md \"t\")\n";
    let found: Vec<_> = links(doc).into_iter().map(|l| (l.text, l.target)).collect();
    assert_eq!(
        found,
        vec![
            ("a".to_string(), "#a".to_string()),
            ("e".to_string(), "e.md".to_string())
        ]
    );
    assert_eq!(
        autolinks("`<http://x>` <https://y>"),
        vec![(1, "<https://y>".to_string())]
    );
    assert_eq!(
        split_fragment("bench/NOTES.md#x"),
        ("bench/NOTES.md", Some("x"))
    );
    assert!(is_external("HTTPS://example.org") && !is_external("bench/NOTES.md"));
}

// ---- the README ----

#[test]
fn readme_is_under_500_lines() {
    let n = read("README.md").lines().count();
    assert!(n < MAX_README_LINES, "README.md has {n} lines; keep it under {MAX_README_LINES} (history goes to bench/NOTES.md)");
}

#[test]
fn readme_has_links_and_headings_to_check() {
    let text = read("README.md");
    assert!(
        !links(&text).is_empty(),
        "no links found: the scanner is broken"
    );
    // manifest.yaml's header points readers at this anchor.
    assert!(
        anchors(&text).iter().any(|a| a == "manifest-reference"),
        "README.md lost its `Manifest reference` heading, which manifest.yaml cites"
    );
}

#[test]
fn readme_anchors_exist() {
    let text = read("README.md");
    let known = anchors(&text);
    let broken: Vec<String> = links(&text)
        .into_iter()
        .filter(|l| l.target.starts_with('#'))
        .filter(|l| !known.iter().any(|a| *a == l.target[1..]))
        .map(|l| format!("README.md:{}: [{}]({})", l.line, l.text, l.target))
        .collect();
    assert!(
        broken.is_empty(),
        "links to anchors that no heading makes:\n{}\nknown anchors: {known:?}",
        broken.join("\n")
    );
}

#[test]
fn readme_relative_links_exist() {
    let text = read("README.md");
    let mut broken = Vec::new();
    for l in links(&text) {
        if l.target.starts_with('#') || is_external(&l.target) {
            continue;
        }
        let (path, fragment) = split_fragment(&l.target);
        let full = repo().join(path);
        if path.is_empty() || Path::new(path).is_absolute() || !full.exists() {
            broken.push(format!(
                "README.md:{}: [{}]({}): no such path",
                l.line, l.text, l.target
            ));
            continue;
        }
        // A fragment into another Markdown file must name one of its headings.
        if let Some(f) = fragment.filter(|_| path.ends_with(".md")) {
            if !anchors(&read(path)).iter().any(|a| a == f) {
                broken.push(format!(
                    "README.md:{}: [{}]({}): {path} has no heading #{f}",
                    l.line, l.text, l.target
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken relative links:\n{}",
        broken.join("\n")
    );
}

#[test]
fn readme_links_stay_inside_the_repository() {
    let text = read("README.md");
    let external: Vec<String> = links(&text)
        .into_iter()
        .filter(|l| is_external(&l.target))
        .map(|l| format!("README.md:{}: [{}]({})", l.line, l.text, l.target))
        .chain(
            autolinks(&text)
                .into_iter()
                .map(|(n, a)| format!("README.md:{n}: {a}")),
        )
        .collect();
    assert!(
        external.is_empty(),
        "links outside the repository:\n{}",
        external.join("\n")
    );
}

#[test]
fn profiling_notes_exist() {
    let notes = read("bench/NOTES.md");
    assert!(!notes.trim().is_empty(), "bench/NOTES.md is empty");
}
