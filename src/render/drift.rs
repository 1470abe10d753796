//! `render --check`: how a directory differs from what would be rendered
//! (changed, missing and extra files, each change as a short unified diff).

use super::write::{kept_paths, marker_text_with, KeptSecret, MARKER};
use super::Files;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// How a directory differs from the rendered files.
#[derive(Debug, Default)]
pub struct Drift {
    /// Files whose contents differ, with a short unified-style diff.
    pub changed: Vec<(String, String)>,
    /// Rendered files absent from the directory.
    pub missing: Vec<String>,
    /// Files in the directory that render would not write.
    pub extra: Vec<String>,
}

impl Drift {
    pub fn is_clean(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.missing {
            writeln!(f, "missing: {p}")?;
        }
        for p in &self.extra {
            writeln!(f, "extra:   {p}")?;
        }
        for (p, diff) in &self.changed {
            writeln!(f, "differs: {p}")?;
            f.write_str(diff)?;
        }
        Ok(())
    }
}

/// Every file under `dir`, as `/`-separated relative paths, sorted.
pub(super) fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().into_owned();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().map_err(|e| e.to_string())?.is_dir() {
            walk(&e.path(), &r, out)?;
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// Compares `out` with `files` (the admin env file is not compared).
#[cfg(any(test, feature = "internals"))]
pub fn check(out: &Path, files: &Files) -> Result<Drift, String> {
    check_with(out, files, &[])
}

/// [`check`]; `extra` kept secret files are not compared either.
pub fn check_with(out: &Path, files: &Files, extra: &[KeptSecret]) -> Result<Drift, String> {
    let mut drift = Drift::default();
    let mut on_disk = Vec::new();
    if out.is_dir() {
        walk(out, "", &mut on_disk)?;
    }
    let kept = kept_paths(extra);
    on_disk.retain(|p| !kept.contains(p));
    // The marker is compared like a rendered file.
    let mut files = files.clone();
    files.insert(MARKER.into(), marker_text_with(&files, extra));
    let files = &files;
    on_disk.sort();
    for p in &on_disk {
        if !files.contains_key(p) {
            drift.extra.push(p.clone());
        }
    }
    for (p, want) in files {
        match fs::read(out.join(p)) {
            Err(_) => drift.missing.push(p.clone()),
            Ok(have) if have != want.as_bytes() => {
                let have = String::from_utf8_lossy(&have);
                drift.changed.push((p.clone(), short_diff(p, &have, want)));
            }
            Ok(_) => {}
        }
    }
    Ok(drift)
}

/// The first hunk of the unified diff (three lines of context), at most
/// `MAX` lines of it; a longer hunk is cut with a note.
pub fn short_diff(path: &str, old: &str, new: &str) -> String {
    const MAX: usize = 22;
    let mut s = format!("--- {path} (on disk)\n+++ {path} (rendered)\n");
    if old.lines().eq(new.lines()) {
        // Same lines, different bytes (line endings or a final newline).
        s.push_str(" (only whitespace at line ends or the final newline differs)\n");
        return s;
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let mut unified = diff.unified_diff();
    if let Some(hunk) = unified.context_radius(3).iter_hunks().next() {
        let text = hunk.to_string();
        let lines: Vec<&str> = text.lines().collect();
        // The `@@` line, then the hunk's lines.
        for l in lines.iter().take(1 + MAX) {
            let _ = writeln!(s, "{l}");
        }
        if lines.len() > 1 + MAX {
            let _ = writeln!(s, "... ({} more lines)", lines.len() - 1 - MAX);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_the_changed_block_with_context() {
        let d = short_diff("f", "a\nb\nc\nd\ne\nf\n", "a\nb\nc\nX\ne\nf\n");
        assert_eq!(
            d,
            "--- f (on disk)\n+++ f (rendered)\n@@ -1,6 +1,6 @@\n a\n b\n c\n-d\n+X\n e\n f\n"
        );
        let d = short_diff("f", "a\n", "a\nb\n");
        assert!(d.contains("+b\n") && !d.contains("\n-"), "{d}");
        let long: String = (0..100).map(|i| format!("{i}\n")).collect();
        let d = short_diff("f", "", &long);
        assert!(d.ends_with("+21\n... (78 more lines)\n"), "{d}");
        let d = short_diff("f", "a\nb\n", "a\r\nb");
        assert!(d.ends_with(" (only whitespace at line ends or the final newline differs)\n"));
    }
}
