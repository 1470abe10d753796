//! What the examples' tests share about running a telltale service: the
//! service as a child process on a free port (read from its `telltale
//! listening on` line), stopped with SIGTERM and a clean exit or killed on
//! drop; the CLI run to its end; the manifest copied and edited; a client
//! that presents a key and the scrape token. Each example's
//! `tests/common/mod.rs` includes this file with `#[path]`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running service, killed on drop unless stopped.
pub struct Service {
    child: Option<Child>,
    pub base: String,
    pub port: u16,
}

impl Service {
    /// Spawns `cmd` in `dir`, its stderr in `dir/<name>.stderr`, and waits
    /// (at most 30 s) for the port it listens on.
    pub fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Service {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = cmd
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let port = listening_port(&mut child, name, &stderr);
        Service {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    pub fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    /// SIGTERM and a clean exit (the log file is flushed).
    pub fn stop(mut self) {
        let mut c = self.child.take().unwrap();
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(c.wait().unwrap().success());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The port the service printed it listens on.
fn listening_port(child: &mut Child, name: &str, stderr: &Path) -> u16 {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("telltale listening on http://") {
                    break a.rsplit(':').next().unwrap().parse().unwrap();
                }
            }
            Err(_) => panic!(
                "{name} did not start:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            ),
        }
    }
}

/// `bin args` in `cwd`, run to its end: its exit code, stdout and stderr.
pub fn run_in(bin: &Path, args: &[&str], cwd: &Path) -> (i32, String, String) {
    let o = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The manifest `source` copied into `dir`, edited by `f`.
pub fn edited_manifest(
    source: &Path,
    dir: &Path,
    f: impl FnOnce(&mut serde_yaml::Value),
) -> PathBuf {
    let text = std::fs::read_to_string(source).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    f(&mut v);
    let p = dir.join("manifest.yaml");
    std::fs::write(&p, serde_yaml::to_string(&v).unwrap()).unwrap();
    p
}

/// A temporary directory named after the test suite.
pub fn tempdir_named(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// A client that presents `key` (`X-API-Key`) and the scrape token.
pub fn client_with(key: &str, scrape_token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-api-key", key.parse().unwrap());
    h.insert(
        "authorization",
        format!("Bearer {scrape_token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}
