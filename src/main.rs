use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    telltale::cli::run(telltale::cli::Cli::parse())
}
