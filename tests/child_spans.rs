//! A handler's own `tracing` span becomes a child of the request's server
//! span and ends where its code last ran: a clone of it that outlives the
//! request (a library keeping the current span in a background task) does
//! not stretch it past its parent. One test: the process holds one logger
//! and one server.

mod common;
use common::in_process::{Answer, InProcess};
use common::otlp::Otlp;
use common::*;
use std::time::Duration;
use telltale::{Empty, Handler, Input, NoOptions, Setup, SetupError};
use tracing::Instrument;

/// How long the stray clone of the handler's span lives on.
const HELD: Duration = Duration::from_millis(800);

struct Work;

impl Handler for Work {
    type Options = NoOptions;
    type Path = Empty;
    type Query = Empty;
    type Body = Empty;
    type Response = Answer;
    type State = ();

    fn name(&self) -> &'static str {
        "work"
    }

    fn setup(&self, _: NoOptions, _: &mut Setup<'_>) -> Result<(), SetupError> {
        Ok(())
    }

    async fn handle(&self, _: &(), _: Input<Empty, Empty, Empty>) -> Answer {
        let span = tracing::info_span!("work.step", step = 1);
        // A background task keeps a clone of the span after the request.
        let kept = span.clone();
        tokio::spawn(async move {
            tokio::time::sleep(HELD).await;
            drop(kept);
        });
        tokio::time::sleep(Duration::from_millis(20))
            .instrument(span)
            .await;
        Answer::ok()
    }
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_span_ends_where_its_code_last_ran_not_when_its_last_clone_drops() {
    let receiver = Otlp::start().await;
    let dir = tempdir();
    let manifest = format!(
        r#"
service: {{ name: child-spans, version: 0.0.1 }}
endpoints:
  - {{ path: /work, handler: work, summary: Work }}
logging: {{ dir: logs, file: work }}
tracing: {{ endpoint: "{}", delay: 100ms }}
"#,
        receiver.base
    );
    std::fs::write(dir.path().join("manifest.yaml"), manifest).unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let server = InProcess::serve("work", "manifest.yaml", "/", || {
        telltale::App::new().handler(Work)
    })
    .await;
    let r = reqwest::Client::new()
        .get(server.url("/work"))
        .header("traceparent", format!("00-{TRACE}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let wait = Duration::from_secs(15);
    let server_span = receiver
        .wait_for(wait, |s| {
            s.trace_id() == TRACE && s.span.name == "GET /work"
        })
        .await
        .expect("the server span");
    // The child is exported only once its last clone is gone.
    let child = receiver
        .wait_for(wait, |s| s.span.name == "work.step")
        .await
        .expect("the handler's span");
    assert_eq!(child.trace_id(), TRACE);
    assert_eq!(child.parent_id(), server_span.span_id());
    assert_eq!(child.attr("step").as_deref(), Some("1"));
    let (start, end) = (
        child.span.start_time_unix_nano,
        child.span.end_time_unix_nano,
    );
    assert!(start >= server_span.span.start_time_unix_nano);
    assert!(
        end <= server_span.span.end_time_unix_nano,
        "the child ends at {end}, after its parent's end {}",
        server_span.span.end_time_unix_nano
    );
    let took = Duration::from_nanos(end - start);
    assert!(
        took >= Duration::from_millis(20) && took < HELD,
        "the child lasted {took:?}: its 20 ms of work, not the clone's {HELD:?}"
    );

    server.stop().await;
}
