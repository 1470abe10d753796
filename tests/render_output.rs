//! `telltale render`, its output: every file with its notice, deterministic
//! and atomic, `--check` sees drift, the admin password is kept private.

mod common;
mod render_support;
use common::*;
use render_support::*;
use std::path::Path;

#[test]
fn renders_every_file_with_a_do_not_edit_notice() {
    let r = rendered_default();
    let files = snapshot(&r.out);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = RENDERED.to_vec();
    want.push(".grafana-admin.env");
    want.push(".telltale-render");
    want.sort();
    assert_eq!(names, want);
    for f in RENDERED {
        let text = read(&r.out.join(f));
        let notice = "Generated from manifest.yaml by `telltale render`. Do not edit";
        if *f == "manifest.schema.json" {
            // From the manifest's types, not from manifest.yaml.
            let comment = json(&r.out.join(f))["$comment"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                comment.starts_with("Generated from telltale's manifest types"),
                "{comment}"
            );
        } else if f.ends_with(".json") {
            assert!(json(&r.out.join(f))["description"]
                .as_str()
                .unwrap()
                .starts_with(notice));
        } else {
            let first = text.lines().next().unwrap();
            assert!(
                first == format!("# {notice}: change manifest.yaml and re-render.")
                    || first == format!("// {notice}: change manifest.yaml and re-render."),
                "{f}: {first}"
            );
        }
    }
}

#[test]
fn output_is_deterministic_and_matches_the_committed_tree() {
    let dir = tempdir();
    let manifest = copy_default_manifest(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    render_ok(&manifest, &a);
    render_ok(&manifest, &b);
    render_ok(&manifest, &b);
    let (mut sa, mut sb) = (snapshot(&a), snapshot(&b));
    // The admin env file is random per output directory, by design.
    assert_ne!(
        sa.remove(".grafana-admin.env"),
        sb.remove(".grafana-admin.env")
    );
    assert_eq!(sa, sb);

    // CI's drift check: generated/ is what the repo's manifest renders.
    let root = repo();
    let (st, out, err) = run(
        &[
            "render",
            "--check",
            "--manifest",
            "manifest.yaml",
            "--out",
            "generated",
        ],
        &root,
    );
    assert!(st.success(), "generated/ is stale:\n{out}{err}");
}

#[test]
fn admin_password_is_random_private_and_kept() {
    let r = rendered_default();
    let env_path = r.out.join(".grafana-admin.env");
    let env = read(&env_path);
    let pw = env
        .lines()
        .find_map(|l| l.strip_prefix("GF_SECURITY_ADMIN_PASSWORD="))
        .unwrap()
        .to_string();
    assert!(
        pw.len() >= 32 && pw.chars().all(|c| c.is_ascii_hexdigit()),
        "{pw}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "env file is readable by others: {mode:o}");
    }
    for (f, bytes) in snapshot(&r.out) {
        if f != ".grafana-admin.env" {
            let text = String::from_utf8(bytes).unwrap();
            assert!(!text.contains(&pw), "{f} contains the password");
            assert!(
                !text.contains("admin123"),
                "{f} contains the seed's password"
            );
            assert!(!text.to_ascii_uppercase().contains("PASSWORD="), "{f}");
        }
    }
    let stdout = render_ok(&r.manifest, &r.out);
    assert!(
        stdout.contains(&format!(
            "Grafana admin password: {} (kept)",
            env_path.display()
        )),
        "{stdout}"
    );
    assert_eq!(read(&env_path), env);
    // --check ignores it.
    std::fs::write(&env_path, "GF_SECURITY_ADMIN_PASSWORD=changed\n").unwrap();
    let (st, _, err) = render(&r.manifest, &r.out, &["--check"]);
    assert!(st.success(), "{err}");
}

#[test]
fn a_failed_render_leaves_the_old_tree_untouched() {
    let r = rendered_default();
    let before = snapshot(&r.out);
    let siblings = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let clean = siblings(r.dir.path());

    // 1. An invalid manifest: nothing is written.
    let text = read(&r.manifest).replace("scrape_interval: 15s", "scrape_interval: soon");
    std::fs::write(&r.manifest, text).unwrap();
    let (st, _, err) = render(&r.manifest, &r.out, &[]);
    assert!(!st.success());
    assert!(err.contains("stack.scrape_interval"), "{err}");
    assert_eq!(snapshot(&r.out), before);
    assert_eq!(siblings(r.dir.path()), clean);

    // 2. Killed mid-write (a 1 KiB file-size limit: SIGXFSZ on the first
    //    large file). The new manifest differs, so a half-written tree would show.
    let text = read(&r.manifest).replace("scrape_interval: soon", "scrape_interval: 30s");
    std::fs::write(&r.manifest, text).unwrap();
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1; exec \"$0\" render --manifest \"$1\" --out \"$2\"")
        .arg(bin())
        .arg(&r.manifest)
        .arg(&r.out)
        .status()
        .unwrap();
    assert!(
        !st.success(),
        "render should not survive a 1 KiB file-size limit"
    );
    assert_eq!(snapshot(&r.out), before, "the old tree changed");
    assert!(
        siblings(r.dir.path()).len() > clean.len(),
        "expected the killed render's temp dir beside the output"
    );

    // 3. The next render swaps the new tree in and removes the leftovers.
    render_ok(&r.manifest, &r.out);
    assert_eq!(siblings(r.dir.path()), clean);
    assert!(read(&r.out.join("prometheus/prometheus.yml")).contains("scrape_interval: \"30s\""));
}

#[test]
fn check_reports_changed_missing_and_extra_files() {
    let r = rendered_default();
    let (st, out, _) = render(&r.manifest, &r.out, &["--check"]);
    assert!(st.success());
    let up_to_date = format!("up to date ({} files)", RENDERED.len());
    assert!(out.contains(&up_to_date), "{out}");

    let prom = r.out.join("prometheus/prometheus.yml");
    let text = read(&prom);
    std::fs::write(
        &prom,
        text.replace("scrape_interval: \"15s\"", "scrape_interval: \"1m\""),
    )
    .unwrap();
    std::fs::remove_file(r.out.join("promtail/promtail.yml")).unwrap();
    std::fs::write(r.out.join("grafana/notes.txt"), "hand-made\n").unwrap();
    let before = snapshot(&r.out);
    let (st, _, err) = render(&r.manifest, &r.out, &["--check"]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("differs: prometheus/prometheus.yml"), "{err}");
    assert!(err.contains("-  scrape_interval: \"1m\""), "{err}");
    assert!(err.contains("+  scrape_interval: \"15s\""), "{err}");
    assert!(err.contains("missing: promtail/promtail.yml"), "{err}");
    assert!(err.contains("extra:   grafana/notes.txt"), "{err}");
    assert_eq!(snapshot(&r.out), before, "--check must not write");

    // The hand-made file is not render's to remove: refused, untouched.
    let (st, _, err) = render(&r.manifest, &r.out, &[]);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("grafana/notes.txt"), "{err}");
    assert_eq!(snapshot(&r.out), before, "a refused render must not write");
    std::fs::remove_file(r.out.join("grafana/notes.txt")).unwrap();
    render_ok(&r.manifest, &r.out);
    let (st, _, _) = render(&r.manifest, &r.out, &["--check"]);
    assert!(st.success());
}

#[test]
fn render_dashboard_is_the_written_file() {
    let r = rendered_default();
    let model =
        telltale::model::open(Some(&r.manifest), &telltale::KindRegistry::builtin()).unwrap();
    let text = telltale::render::render_dashboard(&model).unwrap();
    assert_eq!(
        text,
        read(&r.out.join("grafana/dashboards/ecommerce-api.json"))
    );
}

/// A `$` in `logging.dir` reaches docker-compose.yml as `$$`: compose would
/// otherwise expand it as a variable (`logs$HOME` → `logs/root`).
#[test]
fn compose_escapes_dollar_signs_from_the_manifest() {
    let dir = tempdir();
    let base = copy_default_manifest(dir.path());
    let manifest = dir.path().join("dollar.yaml");
    edit_manifest(&base, &manifest, |v| {
        *at(v, &["logging", "dir"]) = "logs$HOME${X}".into();
    });
    let out = dir.path().join("out");
    render_ok(&manifest, &out);
    let compose = yaml(&out.join("docker-compose.yml"));
    let vols: Vec<&str> = compose["services"]["alloy"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let logs = vols
        .iter()
        .find(|v| v.ends_with(":/var/log/telltale:ro"))
        .unwrap_or_else(|| panic!("no log volume in {vols:?}"));
    assert!(
        logs.ends_with("logs$$HOME$${X}:/var/log/telltale:ro"),
        "compose would expand {logs:?}"
    );
    // What compose makes of it: the directory as written.
    assert!(logs
        .replace("$$", "$")
        .ends_with("logs$HOME${X}:/var/log/telltale:ro"));
}
