//! Shared test harness: the real `telltale` binary on an ephemeral port.
#![allow(dead_code)]

pub mod fincore;
pub mod grafana;
pub mod in_process;
pub mod otlp;
pub mod prom;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of the built binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_telltale")
}

/// Repository root (where manifest.yaml lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running server, stopped (SIGKILL) on drop unless `stop()` was called.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    /// The working directory (logs go to `<workdir>/<logging.dir>`).
    pub workdir: PathBuf,
    stderr_path: PathBuf,
}

impl Server {
    /// Starts `telltale serve --manifest <manifest> --host 127.0.0.1 --port 0` in `workdir`.
    pub fn start(manifest: &Path, workdir: &Path) -> Server {
        Self::start_with(manifest, workdir, &[])
    }

    pub fn start_with(manifest: &Path, workdir: &Path, extra: &[&str]) -> Server {
        std::fs::create_dir_all(workdir).unwrap();
        let stderr = std::fs::File::create(workdir.join("server.stderr")).unwrap();
        Self::start_stdio(manifest, workdir, extra, stderr.into()).0
    }

    /// Like [`Server::start_with`], with stderr going to `stderr`; also
    /// returns the child's stderr pipe when `stderr` was `Stdio::piped()`.
    pub fn start_stdio(
        manifest: &Path,
        workdir: &Path,
        extra: &[&str],
        stderr: Stdio,
    ) -> (Server, Option<std::process::ChildStderr>) {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--manifest")
            .arg(manifest)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            // The instance name from the test's own settings, not the machine's.
            .env_remove("TELLTALE_INSTANCE")
            .env_remove("POD_NAME");
        Self::spawn(cmd, workdir, stderr)
    }

    /// Runs `cmd` (a `telltale serve` with every argument it needs) in
    /// `workdir` and waits until it listens.
    pub fn spawn(
        mut cmd: Command,
        workdir: &Path,
        stderr: Stdio,
    ) -> (Server, Option<std::process::ChildStderr>) {
        std::fs::create_dir_all(workdir).unwrap();
        let stderr_path = workdir.join("server.stderr");
        let mut child = cmd
            .current_dir(workdir)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn telltale");
        let pipe = child.stderr.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("telltale listening on http://") {
                        break addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not start; stderr:\n{}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        };
        let server = Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            port,
            workdir: workdir.to_path_buf(),
            stderr_path,
        };
        (server, pipe)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then waits for a graceful exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        sigterm(child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                if !st.success() {
                    eprintln!(
                        "server exited with {st:?}; stderr:\n{}",
                        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
                    );
                }
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit within 30s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh temporary directory, removed on drop.
/// Sends SIGTERM to process `pid` (this test process too: an in-process
/// server handles it).
pub fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -TERM {pid}");
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("telltale-test-")
        .tempdir()
        .unwrap()
}

/// Copies the repo's manifest and data files into `dir`; returns the manifest path.
pub fn copy_default_manifest(dir: &Path) -> PathBuf {
    let root = repo();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for f in ["manifest.yaml", "data/products.yaml", "data/users.yaml"] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap();
    }
    dir.join("manifest.yaml")
}

/// Replaces the first `from` (which must be there) with `to` in the
/// manifest at `path`.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in the manifest");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Points the demo manifest's `tracing.endpoint` (the stack's Tempo) at
/// `endpoint`: tracing stays on (spans exist, and are sampled, whether or
/// not the endpoint answers).
pub fn export_to(manifest: &Path, endpoint: &str) {
    edit(
        manifest,
        "endpoint: http://127.0.0.1:4318",
        &format!("endpoint: {endpoint}"),
    );
}

/// Turns the demo manifest's tracing off (its endpoint, the stack's Tempo,
/// is not running in tests: a test that counts every log line must not see
/// the exporter's warning about it).
pub fn untraced(manifest: &Path) {
    edit(manifest, "  endpoint: http://127.0.0.1:4318\n", "");
}

/// Sends `bytes` on a fresh connection to the loopback `port`; returns
/// what came back (up to 64 KB).
pub fn raw(port: u16, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while out.len() < 64 << 10 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the binary with `args`; returns (status, stdout, stderr).
pub fn run(args: &[&str], cwd: &Path) -> (ExitStatus, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run telltale");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// GET `url` and return its body as text.
pub async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Blocking GET of a body (for tests that are not async).
pub fn http_get(url: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// Parses Prometheus text format into (series, value) pairs, e.g.
/// (`http_requests_total{method="GET",path="/",status="200"}`, 3.0).
pub fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every sample of family `name` whose series contains all `matchers` (e.g. `path="/"`).
pub fn metric_sum(text: &str, name: &str, matchers: &[&str]) -> f64 {
    parse_metrics(text)
        .into_iter()
        .filter(|(s, _)| {
            (s == name || s.starts_with(&format!("{name}{{")))
                && matchers.iter().all(|m| s.contains(m))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Every JSON line of the log files under `<dir>/logs`, parsed.
pub fn log_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir.join("logs")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            lines.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    lines
}

/// Runs a tool to completion: (exit 0, stdout then stderr).
pub fn outcome(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A tool of the git-ignored venv that scripts/install-test-deps fills.
pub fn venv_bin(tool: &str) -> PathBuf {
    let p = repo().join(".venv/bin").join(tool);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps",
        p.display()
    );
    p
}

/// What Prometheus sends in `Accept` by default: OpenMetrics first.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `text` parsed by the official Python client's parser (`openmetrics`:
/// `prometheus_client.openmetrics.parser`, which rejects what the spec
/// forbids; else the text format's `prometheus_client.parser`), as JSON:
/// `[{name, type, samples: [{name, labels, value, exemplar: {labels,
/// value, timestamp} | null}]}]`. Panics with the parser's error.
pub fn python_parse(text: &str, openmetrics: bool) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, math, sys
if sys.argv[1] == "om":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
def num(v):
    return None if v is None else (str(v) if math.isinf(v) or math.isnan(v) else v)
def ts(t):
    return None if t is None else (float(t) if not hasattr(t, "sec") else t.sec + t.nsec / 1e9)
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": num(s.value),
         "exemplar": None if s.exemplar is None else {
             "labels": s.exemplar.labels, "value": num(s.exemplar.value),
             "timestamp": ts(s.exemplar.timestamp)}}
        for s in f.samples]})
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = Command::new(venv_bin("python"))
        .args(["-c", SCRIPT, if openmetrics { "om" } else { "text" }])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser rejected it: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every sample of parsed families (see [`python_parse`]) as
/// `name{sorted labels}` (its identity as Prometheus stores it).
pub fn series_names(families: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for f in families.as_array().unwrap() {
        for s in f["samples"].as_array().unwrap() {
            let labels: std::collections::BTreeMap<&str, &str> = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            out.insert(format!("{}{labels:?}", s["name"].as_str().unwrap()));
        }
    }
    out
}

/// Every sample of the text exposition format as `name{sorted labels}`,
/// in the form of [`series_names`]: the series Prometheus stores from it.
pub fn text_series(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let (name, mut rest) = line.split_at(end);
        let mut labels = std::collections::BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            while let Some(eq) = rest.find("=\"") {
                let key = rest[..eq].trim_start_matches(',').to_string();
                let mut value = String::new();
                let mut chars = rest[eq + 2..].char_indices();
                let mut close = rest.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => {}
                        },
                        '"' => {
                            close = eq + 2 + i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                rest = &rest[close.min(rest.len())..];
                if rest.starts_with('}') {
                    break;
                }
            }
        }
        let labels: std::collections::BTreeMap<&str, &str> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        out.insert(format!("{name}{labels:?}"));
    }
    out
}
