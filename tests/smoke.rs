mod common;
use common::*;

#[tokio::test]
async fn server_starts_and_answers_health() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let srv = Server::start(&manifest, dir.path());
    let r = reqwest::get(srv.url("/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(srv.stop().success());
}
