//! The limit for `bench/run`: a bare poem server that answers `GET /products`
//! with fixed bytes (captured from telltale's own `/products`), with no
//! middleware, no metrics, no logs and no request ids.
//!
//! Usage: `telltale-baseline --body FILE [--host H] [--port P]`. Prints
//! `baseline listening on http://ADDR:PORT` once bound (port 0 picks one).

use bytes::Bytes;
use poem::endpoint::make_sync;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{get, Response, Route, Server};
use std::process::ExitCode;

struct Args {
    body: String,
    host: String,
    port: u16,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        body: String::new(),
        host: "127.0.0.1".into(),
        port: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--body" => args.body = value()?,
            "--host" => args.host = value()?,
            "--port" => {
                let v = value()?;
                args.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.body.is_empty() {
        return Err("--body FILE is required".into());
    }
    Ok(args)
}

async fn run(args: Args, body: Bytes) -> Result<(), String> {
    let app = Route::new().at(
        "/products",
        get(make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(body.clone())
        })),
    );
    let acceptor = TcpListener::bind(format!("{}:{}", args.host, args.port))
        .into_acceptor()
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or("no local address")?;
    println!("baseline listening on http://{addr}");
    Server::new_with_acceptor(acceptor)
        .run(app)
        .await
        .map_err(|e| format!("server error: {e}"))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        let body =
            std::fs::read(&args.body).map_err(|e| format!("cannot read {}: {e}", args.body))?;
        // The same runtime as telltale's `serve`.
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?
            .block_on(run(args, Bytes::from(body)))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telltale-baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
