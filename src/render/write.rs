//! Putting rendered files on disk, all or nothing, and comparing them.
//!
//! [`write_atomic`] writes the whole tree into a sibling temporary directory
//! and swaps it in with two renames, so a failed or killed render leaves the
//! previous tree as it was (at worst, a stale `<out>.tmp-*` sibling that the
//! next render removes). [`check`] reports how a directory differs from
//! what would be rendered.

use super::Files;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Grafana admin credentials beside `docker-compose.yml`: created once with a
/// random password, kept across renders, git-ignored, ignored by `--check`.
pub const ADMIN_ENV_FILE: &str = ".grafana-admin.env";

/// What [`write_atomic`] did.
#[derive(Debug)]
pub struct Written {
    pub files: usize,
    /// Path of the admin env file.
    pub admin_env: PathBuf,
    /// Whether it was created by this render (else kept).
    pub admin_env_created: bool,
}

fn parent_and_name(out: &Path) -> Result<(PathBuf, String), String> {
    let name = out
        .file_name()
        .ok_or_else(|| format!("output directory {} has no name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

fn random_password() -> Result<String, String> {
    let mut buf = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom for the Grafana password: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn admin_env_text(password: &str) -> String {
    format!(
        "# Grafana admin credentials for docker-compose.yml. Created by `telltale render`\n\
         # with a random password; git-ignored; kept across renders. Delete it to get a new one.\n\
         GF_SECURITY_ADMIN_USER=admin\n\
         GF_SECURITY_ADMIN_PASSWORD={password}\n"
    )
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts.open(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// Writes `files` under `tmp`, plus the admin env file (kept from `out` or new).
fn fill(tmp: &Path, out: &Path, files: &Files) -> Result<bool, String> {
    fs::create_dir(tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    for (rel, text) in files {
        write_file(&tmp.join(rel), text.as_bytes(), false)?;
    }
    let existing = out.join(ADMIN_ENV_FILE);
    match fs::read(&existing) {
        Ok(bytes) => {
            write_file(&tmp.join(ADMIN_ENV_FILE), &bytes, true)?;
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = admin_env_text(&random_password()?);
            write_file(&tmp.join(ADMIN_ENV_FILE), text.as_bytes(), true)?;
            Ok(true)
        }
        Err(e) => Err(format!("cannot read {}: {e}", existing.display())),
    }
}

/// Replaces `out` with exactly `files` (and the kept admin env file).
pub fn write_atomic(out: &Path, files: &Files) -> Result<Written, String> {
    let (parent, name) = parent_and_name(out)?;
    fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // Leftovers of a render that was killed: only while `out` itself is intact.
    if out.is_dir() {
        if let Ok(entries) = fs::read_dir(&parent) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.tmp-"))
                {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let stamp = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let tmp = parent.join(format!("{name}.tmp-{stamp}"));
    let created = match fill(&tmp, out, files) {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        let old = parent.join(format!("{name}.tmp-old-{stamp}"));
        if let Err(e) = fs::rename(out, &old) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(format!("cannot move {} aside: {e}", out.display()));
        }
        if let Err(e) = fs::rename(&tmp, out) {
            let _ = fs::rename(&old, out);
            let _ = fs::remove_dir_all(&tmp);
            return Err(format!("cannot move the new tree into place: {e}"));
        }
        let _ = fs::remove_dir_all(&old);
    } else if let Err(e) = fs::rename(&tmp, out) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(format!("cannot move the new tree into place: {e}"));
    }
    Ok(Written {
        files: files.len(),
        admin_env: out.join(ADMIN_ENV_FILE),
        admin_env_created: created,
    })
}

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
fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), String> {
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
pub fn check(out: &Path, files: &Files) -> Result<Drift, String> {
    let mut drift = Drift::default();
    let mut on_disk = Vec::new();
    if out.is_dir() {
        walk(out, "", &mut on_disk)?;
    }
    on_disk.retain(|p| p != ADMIN_ENV_FILE);
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

/// One unified-diff hunk around the first difference (at most `MAX` lines
/// per side; longer changes are cut with a note).
pub fn short_diff(path: &str, old: &str, new: &str) -> String {
    const CONTEXT: usize = 3;
    const MAX: usize = 8;
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let start = prefix.saturating_sub(CONTEXT);
    let mut s = String::new();
    let _ = writeln!(s, "--- {path} (on disk)\n+++ {path} (rendered)");
    let _ = writeln!(
        s,
        "@@ -{},{} +{},{} @@",
        start + 1,
        prefix - start + a_mid.len().min(MAX),
        start + 1,
        prefix - start + b_mid.len().min(MAX)
    );
    for l in &a[start..prefix] {
        let _ = writeln!(s, " {l}");
    }
    for (sign, mid) in [('-', a_mid), ('+', b_mid)] {
        for l in mid.iter().take(MAX) {
            let _ = writeln!(s, "{sign}{l}");
        }
        if mid.len() > MAX {
            let _ = writeln!(s, "{sign}... ({} more lines)", mid.len() - MAX);
        }
    }
    if a_mid.is_empty() && b_mid.is_empty() {
        // Same lines, different bytes (line endings or a final newline).
        let _ = writeln!(
            s,
            " (only whitespace at line ends or the final newline differs)"
        );
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
            "--- f (on disk)\n+++ f (rendered)\n@@ -1,4 +1,4 @@\n a\n b\n c\n-d\n+X\n"
        );
        let d = short_diff("f", "a\n", "a\nb\n");
        assert!(d.contains("+b\n") && !d.contains("\n-"), "{d}");
    }

    #[test]
    fn write_then_check_round_trips_and_keeps_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("gen");
        let mut files = Files::new();
        files.insert("a/b.yml".into(), "x: 1\n".into());
        files.insert("c.json".into(), "{}\n".into());
        let w = write_atomic(&out, &files).unwrap();
        assert!(w.admin_env_created);
        let pw = fs::read_to_string(&w.admin_env).unwrap();
        assert!(pw.contains("GF_SECURITY_ADMIN_PASSWORD="));
        assert!(check(&out, &files).unwrap().is_clean());

        files.insert("c.json".into(), "{\"a\": 1}\n".into());
        files.remove("a/b.yml");
        files.insert("d.txt".into(), "new\n".into());
        let drift = check(&out, &files).unwrap();
        assert_eq!(drift.missing, ["d.txt"]);
        assert_eq!(drift.extra, ["a/b.yml"]);
        assert_eq!(drift.changed.len(), 1);

        let w = write_atomic(&out, &files).unwrap();
        assert!(!w.admin_env_created);
        assert_eq!(fs::read_to_string(&w.admin_env).unwrap(), pw);
        assert!(check(&out, &files).unwrap().is_clean());
        assert!(!out.join("a/b.yml").exists());
        let siblings: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(siblings.len(), 1, "no temp directories left behind");
    }
}
