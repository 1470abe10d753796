//! payments: authorizes the shop's payments. One handler kind of its own
//! (`payments.authorize`) whose decline rules are the endpoint's `options:`
//! in its `manifest.yaml`, and two business metrics.
//!
//! `cargo run -p payments` serves it on :8003 (with `PAYMENTS_API_KEYS` and
//! `PAYMENTS_METRICS_TOKEN` set); `cargo run -p payments -- render --out DIR`
//! renders its monitoring stack, as for the `telltale` binary.

mod authorize;

fn main() -> std::process::ExitCode {
    telltale::App::new()
        .identity(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            option_env!("PAYMENTS_COMMIT").unwrap_or("unknown"),
        )
        .handler(authorize::Authorize)
        .default_manifest("payments/manifest.yaml", include_str!("../manifest.yaml"))
        .run_cli()
}
