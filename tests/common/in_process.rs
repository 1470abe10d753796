//! An `App` of the test's own, serving in a thread of the test process: a
//! process holds one logger and one SIGTERM handler, so one such server per
//! test binary.

use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A server running `App::run_cli_from(["<name>", "serve", …])`.
pub struct InProcess {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    server: std::thread::JoinHandle<ExitCode>,
}

impl InProcess {
    /// `app()` serving `manifest` on a free loopback port (log lines to
    /// stdout only), once `probe` (a path) answers at all; at most 30 s.
    pub async fn serve(
        name: &'static str,
        manifest: &str,
        probe: &str,
        app: impl FnOnce() -> telltale::App + Send + 'static,
    ) -> InProcess {
        let port = super::prom::free_port();
        let manifest = manifest.to_string();
        let server = std::thread::spawn(move || {
            app().run_cli_from([
                name,
                "serve",
                "--manifest",
                &manifest,
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--no-log-file",
            ])
        });
        let base = format!("http://127.0.0.1:{port}");
        let c = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.get(format!("{base}{probe}")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the server never answered");
            assert!(!server.is_finished(), "the server ended before it answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        InProcess { base, server }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM to this process: the server drains and its thread ends with
    /// success.
    pub async fn stop(self) {
        super::sigterm(std::process::id());
        let server = self.server;
        let code = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
    }
}

/// The body of [`Answer`]: `{"ok": true}`.
#[derive(poem_openapi::Object)]
pub struct Done {
    pub ok: bool,
}

/// A test handler's one answer: 200 `{"ok": true}` ([`Answer::ok`]).
#[derive(poem_openapi::ApiResponse)]
pub enum Answer {
    #[oai(status = 200)]
    Ok(poem_openapi::payload::Json<Done>),
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::Ok(poem_openapi::payload::Json(Done { ok: true }))
    }
}
