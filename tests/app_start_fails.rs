//! A start hook that fails ends `serve` before the socket is opened, with a
//! failure exit status; `validate` never runs it. (Its own process: the
//! logger is installed once per process.)

mod common;
use common::tempdir;

const MANIFEST: &str = r#"
service: { name: failing-svc, version: 0.0.1 }
endpoints:
  - { path: /health, handler: probe, options: { probe: health } }
logging: { enabled: false }
"#;

/// What the hook would have built.
struct Pool;

#[test]
fn a_failed_start_hook_ends_the_process_before_it_listens() {
    let dir = tempdir();
    std::fs::write(dir.path().join("manifest.yaml"), MANIFEST).unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = || {
        let ran = ran.clone();
        telltale::App::new().on_start(move |_| {
            ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err::<Pool, _>("the database refused the connection".to_string()) }
        })
    };
    let code = app().run_cli_from(["svc", "validate", "--manifest", "manifest.yaml"]);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert_eq!(
        ran.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "validate ran the hook"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let code = app().run_cli_from([
        "svc",
        "serve",
        "--manifest",
        "manifest.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    assert_eq!(code, std::process::ExitCode::FAILURE);
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing may listen after a failed start"
    );
}
