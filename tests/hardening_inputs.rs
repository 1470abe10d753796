//! Hostile conditions: data files that are not regular or too big, an
//! unbounded drain, a log directory serve could not write. The README's
//! "Reliability" table points here.
mod common;
use common::*;

/// `validate` on `m`: (exit code, stderr).
fn validate(m: &std::path::Path, dir: &std::path::Path) -> (Option<i32>, String) {
    let (st, _, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir);
    (st.code(), err)
}

/// A FIFO, a directory or an oversized file given as `data:` is a located
/// error at once; nothing hangs and nothing is read into memory.
#[test]
fn data_files_are_regular_files_within_the_limit() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let fifo = dir.path().join("data/fifo.yaml");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    edit(&m, "data: data/users.yaml", "data: data/fifo.yaml");
    let started = std::time::Instant::now();
    let (code, err) = validate(&m, dir.path());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "validate hung on a FIFO"
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("endpoints[2].data: data file") && err.contains("is not a regular file"),
        "{err}"
    );
    // Located at the field's value: file:line:column.
    let line = std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .position(|l| l.contains("data/fifo.yaml"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("manifest.yaml:{line}:")), "{err}");
    // serve refuses the same way, without hanging.
    let (st, _, err) = run(
        &["serve", "--manifest", m.to_str().unwrap(), "--port", "0"],
        dir.path(),
    );
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("is not a regular file"), "{err}");

    edit(&m, "data: data/fifo.yaml", "data: data");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not a regular file"), "{err}");

    // Over the limit: the default (8 MiB), then a declared one.
    let big = dir.path().join("data/big.yaml");
    let item = "- {id: 1, name: padding padding padding padding padding padding padding}\n";
    std::fs::write(&big, item.repeat((9 << 20) / item.len())).unwrap();
    edit(&m, "data: data\n", "data: data/big.yaml\n");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("over service.data_limit_bytes (8388608)"),
        "{err}"
    );
    edit(
        &m,
        "  shutdown_timeout_seconds: 10\n",
        "  shutdown_timeout_seconds: 10\n  data_limit_bytes: 100\n",
    );
    edit(&m, "data: data/big.yaml", "data: data/users.yaml");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("over service.data_limit_bytes (100)"), "{err}");
}

/// An unbounded drain and a log directory serve could not write are
/// `validate` errors at their fields.
#[test]
fn validate_bounds_the_drain_and_checks_the_log_directory() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    edit(
        &m,
        "shutdown_timeout_seconds: 10",
        "shutdown_timeout_seconds: 18446744073709551615",
    );
    edit(&m, "  dir: logs\n", "  dir: manifest.yaml/logs\n");
    let (code, err) = validate(&m, dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "service.shutdown_timeout_seconds: 18446744073709551615 must be from 1 to 600 seconds"
        ),
        "{err}"
    );
    assert!(
        err.contains("logging.dir: manifest.yaml exists and is not a directory"),
        "{err}"
    );
    assert!(err.contains("2 errors"), "both in one run: {err}");
}
