//! How much of a file is in the page cache. Shared by `tests/logging.rs`
//! and the unit tests of `src/logging/pagecache.rs` (included by path).

use std::path::Path;
use std::process::Command;

/// Bytes of `path` in the page cache, as `fincore` (util-linux) counts them.
pub fn resident(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("run fincore (util-linux)");
    assert!(out.status.success(), "fincore: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("fincore said {text:?}"))
}
