//! The `telltale` binary: the built-in kinds and the demo manifest.
fn main() -> std::process::ExitCode {
    telltale::App::new().run_cli()
}
