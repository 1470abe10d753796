//! Bounded everywhere: what the manifest may be (a regular file within a
//! size limit, wherever it is read), what reloads may cost (memory bounded
//! by the live manifest, however many), the Kubernetes ConfigMap layout
//! under `serve --watch`, and commands whose stdout is a closed pipe.
//! The README's "Reliability" table points here.

mod common;

use common::{bin, copy_default_manifest, metric_sum, tempdir, Server};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to its end within `limit` (else kills it and fails);
/// returns (exit code, stdout, stderr).
fn run_within(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn validate(manifest: &Path) -> (Option<i32>, String, String) {
    run_within(
        Command::new(bin()).args(["validate", "-m", manifest.to_str().unwrap()]),
        Duration::from_secs(10),
    )
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(ok.success());
}

/// Resident memory of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits until `telltale_config_reloads_total{result}` reaches `n`.
async fn await_reloads(server: &Server, result: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = common::get_text(&server.url("/metrics")).await;
        let seen = metric_sum(
            &text,
            "telltale_config_reloads_total",
            &[&format!("result=\"{result}\"")],
        );
        if seen >= n {
            assert_eq!(seen, n, "more {result} reloads than triggered");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {result} reload #{n} within 30 s; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server's stderr holds `needle` (the log writer writes
/// in batches); returns it.
async fn await_stderr(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = server.stderr();
        if err.contains(needle) {
            return err;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in stderr:\n{err}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn validate_refuses_a_manifest_that_is_not_a_regular_file_at_once() {
    let dir = tempdir();
    let fifo = dir.path().join("fifo.yaml");
    mkfifo(&fifo);
    let (code, _, err) = validate(&fifo);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:1:1", fifo.display())) && err.contains("not a regular file"),
        "a located error: {err}"
    );
    let zero = dir.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let (code, _, err) = validate(&zero);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    let (code, _, err) = validate(dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn validate_refuses_a_manifest_over_the_size_limit() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let text = std::fs::read_to_string(&manifest).unwrap();
    // A valid manifest, 2 MiB of it one comment.
    let padded = format!("{text}\n# {}\n", "x".repeat(2 << 20));
    std::fs::write(&manifest, padded).unwrap();
    let (code, _, err) = validate(&manifest);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:1:1", manifest.display()))
            && err.contains("over TELLTALE_MANIFEST_LIMIT_BYTES (1048576)"),
        "{err}"
    );
    // The limit is the documented default, and the variable moves it.
    let (code, _, err) = run_within(
        Command::new(bin())
            .args(["validate", "-m", manifest.to_str().unwrap()])
            .env("TELLTALE_MANIFEST_LIMIT_BYTES", "4194304"),
        Duration::from_secs(30),
    );
    // Read now, and refused by what render checks: it no longer fits a ConfigMap.
    assert_eq!(code, Some(1), "{err}");
    assert!(
        !err.contains("TELLTALE_MANIFEST_LIMIT_BYTES") && err.contains("a ConfigMap holds"),
        "{err}"
    );
    let (code, _, err) = run_within(
        Command::new(bin())
            .args(["validate", "-m", manifest.to_str().unwrap()])
            .env("TELLTALE_MANIFEST_LIMIT_BYTES", "lots"),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("TELLTALE_MANIFEST_LIMIT_BYTES=\"lots\""),
        "{err}"
    );
}

/// The manifest replaced by a FIFO, then by `/dev/zero`, then by an
/// oversized one, each followed by SIGHUP: each reload fails at once with
/// the reason logged, memory stays where it was, a later good reload
/// succeeds, and SIGTERM ends the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_a_fifo_a_device_or_a_huge_manifest_fails_at_once_and_costs_nothing() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let good = std::fs::read_to_string(&manifest).unwrap();
    let server = Server::start(&manifest, dir.path());
    let before = rss(server.pid());

    std::fs::remove_file(&manifest).unwrap();
    mkfifo(&manifest);
    hup(server.pid());
    await_reloads(&server, "failure", 1.0).await;

    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
    hup(server.pid());
    await_reloads(&server, "failure", 2.0).await;

    std::fs::remove_file(&manifest).unwrap();
    std::fs::write(&manifest, format!("{good}\n# {}\n", "x".repeat(200 << 20))).unwrap();
    hup(server.pid());
    await_reloads(&server, "failure", 3.0).await;
    let after = rss(server.pid());
    assert!(
        after < before + (32 << 20),
        "RSS grew from {before} to {after} bytes"
    );
    let err = await_stderr(&server, "over TELLTALE_MANIFEST_LIMIT_BYTES").await;
    assert_eq!(
        err.matches("is not a regular file").count(),
        2,
        "both refusals logged: {err}"
    );
    await_stderr(&server, "over TELLTALE_MANIFEST_LIMIT_BYTES").await;

    std::fs::write(&manifest, &good).unwrap();
    hup(server.pid());
    await_reloads(&server, "success", 1.0).await;
    let started = Instant::now();
    assert!(server.stop().success());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A reload stuck in a blocking read (simulated with a FIFO opened by the
/// old code) never holds the exit: SIGTERM ends the process at once even
/// while a reload is under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_never_waits_for_a_reload() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let server = Server::start(&manifest, dir.path());
    std::fs::remove_file(&manifest).unwrap();
    mkfifo(&manifest);
    hup(server.pid());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(server.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        started.elapsed()
    );
}

/// 80 reloads, each with a new 600 KB endpoint description: the process
/// keeps what the live manifest needs, not every text it ever served.
/// glibc is pinned so that what is measured is what is kept, not how it
/// fragments: one arena, and a fixed mmap threshold, so every large block
/// is its own mapping and goes back to the system when freed (glibc's
/// sliding threshold otherwise moves them into the heap, where a busy CI
/// machine has seen RSS grow 8 MB whatever the process keeps). Keeping
/// each description would be 36 MB; the bound is 16 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_after_many_reloads_is_bounded_by_the_live_manifest() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let good = std::fs::read_to_string(&manifest).unwrap();
    let needle = "    summary: List products";
    assert!(good.contains(needle), "the demo lists products");
    let version = |i: usize| {
        let text = format!("{i:06} {}", "described at length ".repeat(30_000));
        good.replacen(
            needle,
            &format!("{needle} ({i})\n    description: \"{text}\""),
            1,
        )
    };
    std::fs::write(&manifest, version(0)).unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["serve", "--manifest"])
        .arg(&manifest)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("MALLOC_ARENA_MAX", "1")
        .env("MALLOC_MMAP_THRESHOLD_", "65536")
        .env_remove("TELLTALE_INSTANCE")
        .env_remove("POD_NAME");
    let stderr = std::fs::File::create(dir.path().join("server.stderr")).unwrap();
    let (server, _) = Server::spawn(cmd, dir.path(), stderr.into());
    let mut settled = 0;
    for i in 1..=80usize {
        std::fs::write(&manifest, version(i)).unwrap();
        hup(server.pid());
        await_reloads(&server, "success", i as f64).await;
        if i == 20 {
            settled = rss(server.pid());
        }
    }
    let last = rss(server.pid());
    // Leaking each description would be 60 × 600 KB = 36 MB more.
    assert!(
        last < settled + (16 << 20),
        "RSS went from {settled} (reload 20) to {last} bytes (reload 80)"
    );
    // The served document is the last one.
    let doc = common::get_text(&server.url("/openapi.json")).await;
    assert!(doc.contains("List products (80)") && doc.contains("000080 described"));
    eprintln!("RSS {settled} bytes at reload 20, {last} at reload 80");
    assert!(
        !doc.contains('\u{FFFF}'),
        "no placeholder is left in the document"
    );
    assert!(server.stop().success());
}

/// The layout the kubelet makes for a mounted ConfigMap, and its update.
struct Kubelet {
    dir: std::path::PathBuf,
    generation: usize,
}

impl Kubelet {
    /// `dir/..<ts>/{files}`, `dir/..data` → `..<ts>`, and each top-level
    /// name as a symlink through `..data`.
    fn mount(dir: &Path, files: &[(&str, String)]) -> Kubelet {
        let mut k = Kubelet {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        let ts = k.write(files);
        std::os::unix::fs::symlink(&ts, dir.join("..data")).unwrap();
        let mut tops: Vec<&str> = files
            .iter()
            .map(|(p, _)| p.split('/').next().unwrap())
            .collect();
        tops.dedup();
        for top in tops {
            std::os::unix::fs::symlink(format!("..data/{top}"), dir.join(top)).unwrap();
        }
        k
    }

    /// A new `..<timestamp>` directory holding `files`; its name.
    fn write(&mut self, files: &[(&str, String)]) -> String {
        self.generation += 1;
        let ts = format!(
            "..2026_12_06_02_00_0{}.12345678{}",
            self.generation, self.generation
        );
        for (p, text) in files {
            let at = self.dir.join(&ts).join(p);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, text).unwrap();
        }
        ts
    }

    /// The kubelet's atomic update: the new directory, `..data_tmp`
    /// renamed over `..data`, and (once asked) the old directory removed.
    fn update(&mut self, files: &[(&str, String)]) -> String {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        let ts = self.write(files);
        std::os::unix::fs::symlink(&ts, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        old.to_string_lossy().into_owned()
    }

    fn remove(&self, old: &str) {
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }
}

/// `serve --watch` on a ConfigMap mount: the update is seen when `..data`
/// is swapped (not only when the old directory happens to be deleted),
/// with data files and without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_watch_follows_a_kubernetes_configmap_update() {
    let src = tempdir();
    copy_default_manifest(src.path());
    let read = |p: &str| std::fs::read_to_string(src.path().join(p)).unwrap();
    let manifest = read("manifest.yaml");
    let files = |manifest: String| {
        vec![
            ("manifest.yaml", manifest),
            ("data/products.yaml", read("data/products.yaml")),
            ("data/users.yaml", read("data/users.yaml")),
        ]
    };
    let mount = tempdir();
    let mut kubelet = Kubelet::mount(mount.path(), &files(manifest.clone()));
    let work = tempdir();
    let server = Server::start_with(
        &mount.path().join("manifest.yaml"),
        work.path(),
        &["--watch"],
    );

    let livez = "  - path: /livez\n    method: GET\n    summary: Added by a ConfigMap update\n    tags: [probes]\n    handler: probe\n    options: { probe: health }\n  - path: /error\n";
    let v2 = manifest.replacen("  - path: /error\n", livez, 1);
    let old = kubelet.update(&files(v2.clone()));
    // Seen at the swap, while the old directory is still there.
    await_reloads(&server, "success", 1.0).await;
    assert_eq!(
        reqwest::get(server.url("/livez")).await.unwrap().status(),
        200
    );
    kubelet.remove(&old);

    // A second update, of a data file only.
    let old = kubelet.update(&[
        ("manifest.yaml", v2.clone()),
        ("data/products.yaml", read("data/products.yaml")),
        ("data/users.yaml", read("data/users.yaml") + "\n"),
    ]);
    await_reloads(&server, "success", 2.0).await;
    kubelet.remove(&old);
    assert!(server.stop().success());

    // A manifest with no data files at all (the case that never reloaded).
    let bare = tempdir();
    let minimal = "service:\n  name: bare\n  version: 1.0.0\nendpoints:\n  - path: /health\n    method: GET\n    summary: Health\n    handler: probe\n    options: { probe: health }\n  - path: /metrics\n    method: GET\n    summary: Metrics\n    handler: prometheus\n";
    let mut kubelet = Kubelet::mount(bare.path(), &[("manifest.yaml", minimal.to_string())]);
    let work = tempdir();
    let server = Server::start_with(
        &bare.path().join("manifest.yaml"),
        work.path(),
        &["--watch"],
    );
    let with_ready = minimal.to_string()
        + "  - path: /ready\n    method: GET\n    summary: Ready\n    handler: probe\n    options: { probe: ready }\n";
    let old = kubelet.update(&[("manifest.yaml", with_ready)]);
    await_reloads(&server, "success", 1.0).await;
    assert_eq!(
        reqwest::get(server.url("/ready")).await.unwrap().status(),
        200
    );
    kubelet.remove(&old);
    assert!(server.stop().success());
}

/// `telltale CMD | true`: a closed stdout ends every command quietly,
/// with the exit status it would have had.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let m = manifest.to_str().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let server = Server::start(&manifest, &dir.path().join("srv"));
    for args in [
        vec!["validate", "-m", m],
        vec!["schema"],
        vec!["render", "-m", m, "--out", out],
        vec![
            "chaos",
            "-m",
            m,
            "--target",
            &server.base,
            "--requests",
            "20",
        ],
        vec![
            "chaos",
            "-m",
            m,
            "--target",
            &server.base,
            "--requests",
            "20",
            "--json",
        ],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let got = Command::new(bin())
            .args(&args)
            .current_dir(dir.path())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&got.stderr);
        assert_eq!(got.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}
