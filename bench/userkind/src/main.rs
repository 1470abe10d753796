//! For `bench/run`: telltale with one handler kind registered the way a
//! user registers theirs (`App::handler`), serving fixed bytes on the route
//! it is given. Compared with the built-in `collection` kind serving the
//! same bytes, it measures what the typed path costs per request: typed
//! query parsing, the typed response, and the user handler's future.

use poem_openapi::payload::Binary;
use poem_openapi::{ApiResponse, Object};
use serde::Deserialize;
use telltale::{Empty, Handler, Input, Setup};

/// `options:` of a `bench.fixed` endpoint: the file whose bytes it serves.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    body: String,
}

/// The query `GET /products` takes, as the built-in kind does.
#[derive(Object)]
struct Page {
    limit: Option<u32>,
    offset: Option<u64>,
}

#[derive(ApiResponse)]
enum Fixed {
    #[oai(status = 200, content_type = "application/json")]
    Ok(Binary<bytes::Bytes>),
}

struct Kind;

impl Handler for Kind {
    type Options = Options;
    type Path = Empty;
    type Query = Page;
    type Body = Empty;
    type Response = Fixed;
    type State = bytes::Bytes;

    fn name(&self) -> &'static str {
        "bench.fixed"
    }

    fn setup(&self, o: Options, _: &mut Setup<'_>) -> Result<bytes::Bytes, telltale::SetupError> {
        std::fs::read(&o.body)
            .map(bytes::Bytes::from)
            .map_err(|e| format!("cannot read options.body {}: {e}", o.body).into())
    }

    async fn handle(&self, body: &bytes::Bytes, _: Input<Empty, Page, Empty>) -> Fixed {
        Fixed::Ok(Binary(body.clone()))
    }
}

fn main() -> std::process::ExitCode {
    telltale::App::new().handler(Kind).run_cli()
}
