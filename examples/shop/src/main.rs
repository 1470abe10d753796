//! A small shop built on telltale: two handler kinds of its own and two
//! business metrics declared in its `manifest.yaml`.
//!
//! `cargo run -p shop` serves it; `cargo run -p shop -- render --out generated`
//! renders its monitoring stack, as for the `telltale` binary.

mod orders;

fn main() -> std::process::ExitCode {
    telltale::App::new()
        .identity(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            option_env!("SHOP_COMMIT").unwrap_or("unknown"),
        )
        // The orders live in the `orders_db` dependency (manifest.yaml):
        // its schema migrations run at start, in its dialect.
        .on_start(orders::migrate)
        .handler(orders::Create)
        .handler(orders::Get)
        .default_manifest("shop/manifest.yaml", include_str!("../manifest.yaml"))
        .run_cli()
}
