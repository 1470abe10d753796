//! Hostile conditions: a render that would delete what it did not write,
//! and a stack published beyond loopback. The README's "Reliability" table
//! points here.
mod common;
use common::*;

/// `render --out` the project folder itself (manifest and data inside), a
/// folder of the user's, or one whose sibling matches `DIR.tmp-*`: exit 2
/// for the first two with nothing touched, and the sibling survives.
#[test]
fn render_never_deletes_what_it_did_not_write() {
    let dir = tempdir();
    let project = dir.path().join("project");
    let manifest = copy_default_manifest(&project);
    let m = manifest.to_str().unwrap();
    let files_of = |d: &std::path::Path| {
        let mut v: Vec<_> = walkdir(d);
        v.sort();
        v
    };
    let before = files_of(&project);

    let (st, _, err) = run(&["render", "--manifest", m, "--out", "."], &project);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("manifest.yaml"), "{err}");
    assert_eq!(files_of(&project), before, "nothing touched");

    let (st, _, err) = run(&["render", "--manifest", m, "--out", "data"], &project);
    assert_eq!(st.code(), Some(2), "{err}");
    assert_eq!(files_of(&project), before);

    let mine = project.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("thesis.tex"), "years of work").unwrap();
    let (st, _, err) = run(&["render", "--manifest", m, "--out", "mine"], &project);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("thesis.tex") && err.contains("nothing was touched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("thesis.tex")).unwrap(),
        "years of work"
    );

    // A render into a new folder, then again with a look-alike sibling.
    let (st, _, err) = run(&["render", "--manifest", m, "--out", "gen"], &project);
    assert!(st.success(), "{err}");
    let sibling = project.join("gen.tmp-keep");
    std::fs::create_dir(&sibling).unwrap();
    std::fs::write(sibling.join("backup.tar"), "precious").unwrap();
    let (st, _, err) = run(&["render", "--manifest", m, "--out", "gen"], &project);
    assert!(st.success(), "{err}");
    assert_eq!(
        std::fs::read_to_string(sibling.join("backup.tar")).unwrap(),
        "precious"
    );
    assert!(project.join("gen/.telltale-render").exists());
}

/// Every file under `d`, relative.
fn walkdir(d: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(d).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// The compose file publishes the unauthenticated Prometheus (lifecycle
/// API on), Loki and the shipper, and Grafana, on 127.0.0.1 unless the
/// manifest says `publish: all`; Grafana keeps its login either way.
#[test]
fn compose_publishes_the_stack_on_loopback_unless_told_otherwise() {
    let dir = tempdir();
    let m = copy_default_manifest(dir.path());
    let ports = |out: &str| -> Vec<String> {
        let (st, o, e) = run(
            &["render", "--manifest", m.to_str().unwrap(), "--out", out],
            dir.path(),
        );
        assert!(st.success(), "{o}{e}");
        let text =
            std::fs::read_to_string(dir.path().join(out).join("docker-compose.yml")).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mut all = Vec::new();
        for (_, svc) in v["services"].as_mapping().unwrap() {
            for p in svc["ports"].as_sequence().unwrap() {
                all.push(p.as_str().unwrap().to_string());
            }
            let env = serde_yaml::to_string(&svc["environment"]).unwrap();
            assert!(!env.contains("GF_AUTH_ANONYMOUS_ENABLED: 'true'"), "{env}");
        }
        all.sort();
        all
    };
    let default = ports("a");
    // Prometheus, Loki, the shipper, Grafana, and Tempo's API and OTLP receiver.
    assert_eq!(default.len(), 6, "{default:?}");
    assert!(
        default.iter().all(|p| p.starts_with("127.0.0.1:")),
        "{default:?}"
    );
    edit(
        &m,
        "  shipper: alloy\n",
        "  shipper: alloy\n  publish: all\n  publish_grafana: all\n",
    );
    let open = ports("b");
    assert!(open.iter().all(|p| p.starts_with("0.0.0.0:")), "{open:?}");
}
