//! A small shop built on telltale: two handler kinds of its own and two
//! business metrics declared in its `manifest.yaml`.
//!
//! `cargo run -p shop` serves it; `cargo run -p shop -- render --out generated`
//! renders its monitoring stack, as for the `telltale` binary.

mod orders;

fn main() -> std::process::ExitCode {
    let store = orders::Store::default();
    telltale::App::new()
        .handler(orders::Create::new(store.clone()))
        .handler(orders::Get::new(store))
        .default_manifest("shop/manifest.yaml", include_str!("../manifest.yaml"))
        .run_cli()
}
