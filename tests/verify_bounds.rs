//! Issue 24, item 3 (`verify` side): a Prometheus answering with a body
//! larger than the cap is given up at the cap with an error naming the URL
//! (the client hangs up: the server cannot push the rest), and a hostile
//! Prometheus's error text reaches the terminal and the JSON report without
//! control characters.

mod common;
mod fake_http;
use common::*;
use fake_http::Answer;
use serde_json::Value;
use std::sync::atomic::Ordering;

/// What the body-stream fake sends at most (the test stays bounded even
/// against a client without a cap).
const STREAM: u64 = 200 << 20;

fn verify(prom: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let mut args = vec![
        "verify",
        "-m",
        manifest.to_str().unwrap(),
        "--prometheus",
        prom,
    ];
    args.extend_from_slice(extra);
    let (st, out, err) = run(&args, dir.path());
    (st.code().unwrap_or(-1), out, err)
}

#[test]
fn a_body_past_the_cap_is_given_up_with_the_url_named() {
    let fake = fake_http::start(|_| Answer::Stream(STREAM));
    let started = std::time::Instant::now();
    let (code, out, err) = verify(&fake.base, &["--timeout", "60s"]);
    assert_eq!(code, 2, "{out}{err}");
    let url = format!("{}/api/v1/status/buildinfo", fake.base);
    assert!(
        err.contains(&url) && err.contains("larger than 64 MiB"),
        "the error names the URL and the cap: {err}"
    );
    // The client stopped reading at the cap: the server could not send the rest.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let written = fake.written.load(Ordering::Relaxed);
    assert!(
        written < STREAM,
        "wrote {written} bytes: the client read it all"
    );
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
}

/// Prometheus's error text as a hostile server would write it: a screen
/// clear, a title change with a bell, a CSI in its 8-bit form, a bidi override.
const HOSTILE: &str = r#"{"status":"error","errorType":"bad_data","error":"boom\u001b[2J\u001b]0;pwned\u0007 \u009b31m\u202eend\r\nline"}"#;

fn hostile(path: &str) -> Answer {
    Answer::Json(match path {
        p if p.starts_with("/api/v1/status/buildinfo") => {
            r#"{"status":"success","data":{}}"#.into()
        }
        p if p.starts_with("/api/v1/rules") => {
            r#"{"status":"success","data":{"groups":[]}}"#.into()
        }
        _ => HOSTILE.into(),
    })
}

#[test]
fn server_text_reaches_the_terminal_without_control_characters() {
    let fake = fake_http::start(hostile);
    let (code, text, err) = verify(&fake.base, &[]);
    assert_eq!(code, 1, "{text}{err}");
    assert!(text.contains("boom[2J]0;pwned 31mend"), "{text}");
    let bad: Vec<char> = text
        .chars()
        .filter(|c| *c != '\n' && (c.is_control() || *c == '\u{202e}'))
        .collect();
    assert!(bad.is_empty(), "control characters printed: {bad:?}");

    let (code, json, _) = verify(&fake.base, &["--json"]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&json).unwrap();
    for r in report["queries"].as_array().unwrap() {
        if let Some(reason) = r["reason"].as_str() {
            assert!(
                !reason.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{reason:?}"
            );
        }
    }
}
