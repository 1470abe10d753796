//! Putting rendered files on disk, all or nothing, and comparing them.
//!
//! [`write_atomic`] writes the whole tree into a sibling temporary directory
//! and swaps it in with two renames, so a failed or killed render leaves the
//! previous tree as it was (at worst, a stale `<out>.tmp-*` sibling that the
//! next render removes). [`super::drift::check`] reports how a directory
//! differs from what would be rendered.
//!
//! Render removes only what it wrote. Every tree it writes holds a
//! [`MARKER`] file that lists its files; an existing `out` is replaced only
//! if everything in it is listed there (or, for a tree rendered before the
//! marker existed, is a file this render writes too). Anything else, an
//! `out` that holds the manifest or its data, or a non-directory, is
//! refused before anything is touched ([`WriteError::Refused`]). A stale
//! temporary sibling is removed only if its own marker lists all it holds.

use super::drift::walk;
use super::Files;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Grafana admin credentials beside `docker-compose.yml`: created once with a
/// random password, kept across renders, git-ignored, ignored by `--check`.
pub const ADMIN_ENV_FILE: &str = ".grafana-admin.env";

/// A file of secrets beside the rendered ones that render creates once with
/// a random password, keeps across renders (mode 0600), lists in its marker
/// and leaves out of `--check`: Grafana's admin password, a database's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSecret {
    /// Its path in the output directory.
    pub path: String,
    /// Its lines, `{password}` where the password goes.
    pub lines: Vec<String>,
}

impl KeptSecret {
    fn text(&self, password: &str) -> String {
        let mut t: String = self
            .lines
            .iter()
            .map(|l| l.replace("{password}", password) + "\n")
            .collect();
        if t.is_empty() {
            t.push('\n');
        }
        t
    }
}

/// The kept files: Grafana's admin env file, then `extra`.
pub(super) fn kept_paths(extra: &[KeptSecret]) -> Vec<String> {
    std::iter::once(ADMIN_ENV_FILE.to_string())
        .chain(extra.iter().map(|k| k.path.clone()))
        .collect()
}

/// The list of files render wrote into a tree, written first, so that even
/// a killed render's temporary tree says what it holds.
pub const MARKER: &str = ".telltale-render";

/// Why [`write_atomic`] wrote nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    /// `out` holds what render did not write: nothing was touched (exit 2).
    Refused(String),
    /// An I/O error; `out` is as it was.
    Failed(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Refused(m) | WriteError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<String> for WriteError {
    fn from(m: String) -> Self {
        WriteError::Failed(m)
    }
}

/// The marker's text for `files`: a comment, then one path a line.
#[cfg(test)]
fn marker_text(files: &Files) -> String {
    marker_text_with(files, &[])
}

/// The marker's text for `files` and the kept secret files.
pub(super) fn marker_text_with(files: &Files, extra: &[KeptSecret]) -> String {
    let mut s = String::from(
        "# Written by `telltale render`: every file it wrote in this folder, one a line.\n\
         # render replaces these and removes nothing else. Do not edit.\n",
    );
    for p in files.keys().cloned().chain(kept_paths(extra)) {
        s.push_str(&p);
        s.push('\n');
    }
    s
}

/// The paths a marker lists, or `None` when `dir` has no marker.
fn marker_list(dir: &Path) -> Result<Option<std::collections::BTreeSet<String>>, String> {
    match fs::read_to_string(dir.join(MARKER)) {
        Ok(t) => Ok(Some(
            t.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(String::from)
                .chain([MARKER.to_string()])
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", dir.join(MARKER).display())),
    }
}

/// Absolute, with `.`/`..` resolved and symlinks followed where the path exists.
fn resolved(p: &Path) -> PathBuf {
    if let Ok(c) = fs::canonicalize(p) {
        return c;
    }
    let abs = super::normalize(&std::env::current_dir().unwrap_or_default().join(p));
    if abs.exists() {
        return fs::canonicalize(&abs).unwrap_or(abs);
    }
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => resolved(parent).join(name),
        _ => abs,
    }
}

/// Refuses an `out` that render may not replace; touches nothing.
/// `protected`: the manifest and its data files.
#[cfg(any(test, feature = "internals"))]
pub fn may_replace(out: &Path, files: &Files, protected: &[PathBuf]) -> Result<(), WriteError> {
    may_replace_with(out, files, &[], protected)
}

/// [`may_replace`], with `extra` kept secret files render may also own.
pub fn may_replace_with(
    out: &Path,
    files: &Files,
    extra: &[KeptSecret],
    protected: &[PathBuf],
) -> Result<(), WriteError> {
    let shown = out.display();
    let out_abs = resolved(out);
    for p in protected {
        if resolved(p).starts_with(&out_abs) {
            return Err(WriteError::Refused(format!(
                "--out {shown} holds {}, which render would replace; \
                 render into a folder of its own (e.g. generated); nothing was touched",
                p.display()
            )));
        }
    }
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(WriteError::Failed(format!("cannot inspect {shown}: {e}"))),
    };
    if !meta.is_dir() {
        return Err(WriteError::Refused(format!(
            "--out {shown} exists and is not a directory; nothing was touched"
        )));
    }
    let mut on_disk = Vec::new();
    walk(out, "", &mut on_disk)?;
    if on_disk.is_empty() {
        return Ok(());
    }
    let (listed, how) = match marker_list(out)? {
        Some(l) => (l, "listed in its .telltale-render"),
        // Rendered before the marker existed: only files this render writes.
        None => (
            files.keys().cloned().chain(kept_paths(extra)).collect(),
            "files telltale render writes (it has no .telltale-render)",
        ),
    };
    let foreign: Vec<&String> = on_disk.iter().filter(|p| !listed.contains(*p)).collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = foreign.iter().take(5).map(|s| s.as_str()).collect();
    if foreign.len() > 5 {
        names.push("...");
    }
    Err(WriteError::Refused(format!(
        "--out {shown} holds {} file(s) that render did not write ({}); it replaces only \
         {how}. Move them away or choose another folder; nothing was touched",
        foreign.len(),
        names.join(", ")
    )))
}

/// `<name>.tmp-<pid>-<nanos>` or `<name>.tmp-old-<pid>-<nanos>`: the only
/// names render gives its temporary trees (a user's `gen.tmp-backup` is not one).
fn is_temp_name(file: &str, name: &str) -> bool {
    let Some(rest) = file
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(".tmp-"))
    else {
        return false;
    };
    let rest = rest.strip_prefix("old-").unwrap_or(rest);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    matches!(rest.split_once('-'), Some((pid, nanos)) if digits(pid) && digits(nanos))
}

/// A stale temporary tree of a killed render: a directory whose own marker
/// lists everything in it.
fn is_own_temp(dir: &Path) -> bool {
    let Ok(Some(listed)) = marker_list(dir) else {
        return false;
    };
    let mut on_disk = Vec::new();
    walk(dir, "", &mut on_disk).is_ok() && on_disk.iter().all(|p| listed.contains(p))
}

/// What [`write_atomic`] did.
#[derive(Debug)]
pub struct Written {
    pub files: usize,
    /// Path of the admin env file.
    pub admin_env: PathBuf,
    /// Whether it was created by this render (else kept).
    pub admin_env_created: bool,
    /// The other kept secret files, each with whether this render created it.
    pub kept: Vec<(PathBuf, bool)>,
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
    getrandom::fill(&mut buf)
        .map_err(|e| format!("no randomness for the Grafana password: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Grafana's admin credentials for docker-compose.yml.
fn grafana_admin() -> KeptSecret {
    KeptSecret {
        path: ADMIN_ENV_FILE.into(),
        lines: vec![
            "# Grafana admin credentials for docker-compose.yml. Created by `telltale render`".into(),
            "# with a random password; git-ignored; kept across renders. Delete it to get a new one.".into(),
            "GF_SECURITY_ADMIN_USER=admin".into(),
            "GF_SECURITY_ADMIN_PASSWORD={password}".into(),
        ],
    }
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

/// Writes `files` under `tmp`, after the marker that lists them, plus the
/// kept secret files (each kept from `out` or new). Returns, per kept file
/// (Grafana's first), whether it was created.
fn fill(tmp: &Path, out: &Path, files: &Files, extra: &[KeptSecret]) -> Result<Vec<bool>, String> {
    fs::create_dir(tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    write_file(
        &tmp.join(MARKER),
        marker_text_with(files, extra).as_bytes(),
        false,
    )?;
    for (rel, text) in files {
        write_file(&tmp.join(rel), text.as_bytes(), false)?;
    }
    let grafana = grafana_admin();
    let mut created = Vec::new();
    for k in std::iter::once(&grafana).chain(extra) {
        let existing = out.join(&k.path);
        match fs::read(&existing) {
            Ok(bytes) => {
                write_file(&tmp.join(&k.path), &bytes, true)?;
                created.push(false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = k.text(&random_password()?);
                write_file(&tmp.join(&k.path), text.as_bytes(), true)?;
                created.push(true);
            }
            Err(e) => return Err(format!("cannot read {}: {e}", existing.display())),
        }
    }
    Ok(created)
}

/// Replaces `out` with exactly `files` (and the kept admin env file), if
/// [`may_replace`] allows it. `protected`: the manifest and its data files.
#[cfg(any(test, feature = "internals"))]
pub fn write_atomic(
    out: &Path,
    files: &Files,
    protected: &[PathBuf],
) -> Result<Written, WriteError> {
    write_atomic_with(out, files, &[], protected)
}

/// [`write_atomic`], with `extra` kept secret files besides Grafana's.
pub fn write_atomic_with(
    out: &Path,
    files: &Files,
    extra: &[KeptSecret],
    protected: &[PathBuf],
) -> Result<Written, WriteError> {
    may_replace_with(out, files, extra, protected)?;
    let (parent, name) = parent_and_name(out)?;
    fs::create_dir_all(&parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // Leftovers of a render that was killed: only while `out` itself is
    // intact, and only trees that render wrote.
    if out.is_dir() {
        if let Ok(entries) = fs::read_dir(&parent) {
            for e in entries.flatten() {
                let stale = is_temp_name(&e.file_name().to_string_lossy(), &name);
                if stale && e.file_type().is_ok_and(|t| t.is_dir()) && is_own_temp(&e.path()) {
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
    let created = match fill(&tmp, out, files, extra) {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e.into());
        }
    };
    if out.exists() {
        let old = parent.join(format!("{name}.tmp-old-{stamp}"));
        if let Err(e) = fs::rename(out, &old) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(format!("cannot move {} aside: {e}", out.display()).into());
        }
        if let Err(e) = fs::rename(&tmp, out) {
            let _ = fs::rename(&old, out);
            let _ = fs::remove_dir_all(&tmp);
            return Err(format!("cannot move the new tree into place: {e}").into());
        }
        let _ = fs::remove_dir_all(&old);
    } else if let Err(e) = fs::rename(&tmp, out) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(format!("cannot move the new tree into place: {e}").into());
    }
    Ok(Written {
        files: files.len(),
        admin_env: out.join(ADMIN_ENV_FILE),
        admin_env_created: created.first().copied().unwrap_or(false),
        kept: extra
            .iter()
            .zip(created.iter().skip(1))
            .map(|(k, c)| (out.join(&k.path), *c))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::drift::check;
    use super::*;

    #[test]
    fn write_then_check_round_trips_and_keeps_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("gen");
        let mut files = Files::new();
        files.insert("a/b.yml".into(), "x: 1\n".into());
        files.insert("c.json".into(), "{}\n".into());
        let w = write_atomic(&out, &files, &[]).unwrap();
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
        let changed: Vec<&str> = drift.changed.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(changed, [MARKER, "c.json"]);

        let w = write_atomic(&out, &files, &[]).unwrap();
        assert!(!w.admin_env_created);
        assert_eq!(fs::read_to_string(&w.admin_env).unwrap(), pw);
        assert!(check(&out, &files).unwrap().is_clean());
        assert!(!out.join("a/b.yml").exists());
        let siblings: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(siblings.len(), 1, "no temp directories left behind");
    }

    fn one_file() -> Files {
        let mut files = Files::new();
        files.insert("prometheus/prometheus.yml".into(), "x: 1\n".into());
        files
    }

    /// Every file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut paths = Vec::new();
        walk(dir, "", &mut paths).unwrap();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let b = fs::read(dir.join(&p)).unwrap();
                (p, b)
            })
            .collect()
    }

    #[test]
    fn a_folder_render_did_not_write_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("project");
        fs::create_dir_all(out.join("data")).unwrap();
        fs::write(out.join("notes.txt"), "mine\n").unwrap();
        fs::write(out.join("data/products.yaml"), "- id: 1\n").unwrap();
        let before = snapshot(&out);
        let e = write_atomic(&out, &one_file(), &[]).unwrap_err();
        let WriteError::Refused(msg) = e else {
            panic!("{e:?}")
        };
        assert!(msg.contains("2 file(s) that render did not write"), "{msg}");
        assert!(msg.contains("notes.txt"), "{msg}");
        assert_eq!(snapshot(&out), before, "nothing touched");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
    }

    #[test]
    fn a_file_added_to_a_rendered_folder_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("gen");
        write_atomic(&out, &one_file(), &[]).unwrap();
        fs::write(out.join("keep.me"), "user's\n").unwrap();
        let e = write_atomic(&out, &one_file(), &[]).unwrap_err();
        assert!(
            matches!(&e, WriteError::Refused(m) if m.contains("keep.me")),
            "{e:?}"
        );
        assert_eq!(fs::read_to_string(out.join("keep.me")).unwrap(), "user's\n");
        // What render wrote, it may replace: the listed files only.
        fs::remove_file(out.join("keep.me")).unwrap();
        write_atomic(&out, &one_file(), &[]).unwrap();
    }

    #[test]
    fn an_out_holding_the_manifest_or_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.yaml");
        fs::write(&manifest, "service: {}\n").unwrap();
        let e = write_atomic(dir.path(), &one_file(), std::slice::from_ref(&manifest)).unwrap_err();
        assert!(
            matches!(&e, WriteError::Refused(m) if m.contains("manifest.yaml")),
            "{e:?}"
        );
        // Through `..` and `.` too.
        fs::create_dir(dir.path().join("sub")).unwrap();
        let sneaky = dir.path().join("sub/../.");
        let e = write_atomic(&sneaky, &one_file(), std::slice::from_ref(&manifest)).unwrap_err();
        assert!(matches!(e, WriteError::Refused(_)), "{e:?}");
        let e = write_atomic(&manifest, &one_file(), &[]).unwrap_err();
        assert!(
            matches!(&e, WriteError::Refused(m) if m.contains("not a directory")),
            "{e:?}"
        );
        assert_eq!(fs::read_to_string(&manifest).unwrap(), "service: {}\n");
    }

    #[test]
    fn only_renders_own_stale_temp_trees_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("gen");
        write_atomic(&out, &one_file(), &[]).unwrap();
        // A user's folders that look like render's (one even a copy of a
        // rendered tree), and a killed render's tree.
        let copy = dir.path().join("gen.tmp-copy");
        fs::create_dir(&copy).unwrap();
        fs::write(copy.join(MARKER), marker_text(&one_file())).unwrap();
        let theirs = dir.path().join("gen.tmp-backup");
        fs::create_dir(&theirs).unwrap();
        fs::write(theirs.join("important.db"), "data").unwrap();
        let stale = dir.path().join("gen.tmp-1-2");
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join(MARKER), marker_text(&one_file())).unwrap();
        fs::create_dir(stale.join("prometheus")).unwrap();
        fs::write(stale.join("prometheus/prometheus.yml"), "x").unwrap();
        write_atomic(&out, &one_file(), &[]).unwrap();
        assert_eq!(
            fs::read_to_string(theirs.join("important.db")).unwrap(),
            "data"
        );
        assert!(!stale.exists(), "the killed render's tree is gone");
        assert!(
            copy.join(MARKER).exists(),
            "a user's copy is not render's temp tree"
        );
    }

    #[test]
    fn a_tree_rendered_before_the_marker_is_still_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("gen");
        fs::create_dir_all(out.join("prometheus")).unwrap();
        fs::write(out.join("prometheus/prometheus.yml"), "old\n").unwrap();
        fs::write(out.join(ADMIN_ENV_FILE), "pw\n").unwrap();
        write_atomic(&out, &one_file(), &[]).unwrap();
        assert_eq!(
            fs::read_to_string(out.join(ADMIN_ENV_FILE)).unwrap(),
            "pw\n"
        );
        assert!(out.join(MARKER).exists());
    }
}
