//! `dependencies:` in `validate` and `render`: located errors for what a
//! manifest or a handler gets wrong, and the stack a dependency adds (its
//! compose database with a kept password that no rendered file holds, and
//! the Deployment's variables from a Secret).

mod common;

use common::*;

fn validate(dir: &std::path::Path, edit: impl FnOnce(&mut serde_yaml::Value)) -> String {
    let m = manifest_in(dir, edit);
    let (code, out, err) = run(&["validate", "--manifest", m.to_str().unwrap()], dir);
    assert_eq!(code, 1, "validate should fail:\n{out}{err}");
    err
}

#[test]
fn validate_locates_every_dependency_mistake_at_once() {
    let dir = tempdir();
    let err = validate(dir.path(), |v| {
        let deps = v["dependencies"].as_sequence_mut().unwrap();
        deps[0]["kind"] = "postgress".into();
        deps[1]["url"] = "http://shop:s3cret@payments:8003".into();
        deps[1]["timeout"] = "10m".into();
        let mut third = deps[1].clone();
        third["name"] = "Payments".into();
        third["url"] = "ftp://payments".into();
        deps.push(third);
    });
    let shown = dir.path().join("manifest.yaml").display().to_string();
    for want in [
        "dependencies[0].kind: unknown dependency kind \"postgress\": did you mean \"postgres\"?",
        "dependencies[1].url: a password never goes in the manifest",
        "dependencies[1].timeout: must be from 1ms to 5m",
        "dependencies[2].name: \"Payments\" is not a dependency name",
        "dependencies[2].url: scheme \"ftp\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(
        !err.contains("s3cret"),
        "the password is never echoed:\n{err}"
    );
    // Each error is located: file:line:column.
    assert!(
        err.lines().any(|l| l.starts_with(&format!("{shown}:"))),
        "{err}"
    );
}

#[test]
fn a_handler_asking_for_what_is_not_declared_is_a_located_error() {
    let dir = tempdir();
    // The shop's handlers ask for orders_db's operations and for payments.
    let err = validate(dir.path(), |v| {
        let deps = v["dependencies"].as_sequence_mut().unwrap();
        deps.retain(|d| d["name"] != "payments");
        let ops = &mut deps[0]["options"]["operations"];
        ops.as_mapping_mut().unwrap().remove("delete_order");
    });
    let text = std::fs::read_to_string(dir.path().join("manifest.yaml")).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("orders.create"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(":{line}:")) && err.contains("endpoints[0].handler"),
        "located at the endpoint's handler:\n{err}"
    );
    assert!(
        err.contains("unknown operation of dependency \"orders_db\" \"delete_order\""),
        "{err}"
    );
    // With the operation back, the missing http dependency is named.
    let err = validate(dir.path(), |v| {
        let deps = v["dependencies"].as_sequence_mut().unwrap();
        deps.retain(|d| d["name"] != "payments");
    });
    assert!(
        err.contains("unknown dependency \"payments\"")
            && err.contains("declared in `dependencies:`"),
        "{err}"
    );
    // A client of the wrong type.
    let err = validate(dir.path(), |v| {
        let deps = v["dependencies"].as_sequence_mut().unwrap();
        let pay = deps.iter_mut().find(|d| d["name"] == "payments").unwrap();
        pay["kind"] = "sqlite".into();
        pay["url"] = "sqlite:pay.db".into();
        pay.as_mapping_mut().unwrap().remove("url_from");
        pay["options"] = serde_yaml::from_str("{operations: {x: {operation: SELECT}}}").unwrap();
    });
    assert!(
        err.contains("dependency \"payments\" is of kind sqlite, whose client is a telltale::Sql, not a telltale::HttpClient"),
        "{err}"
    );
}

#[test]
fn render_adds_a_postgres_whose_password_stays_out_of_every_rendered_file() {
    let dir = tempdir();
    let m = manifest_in(dir.path(), |_| {});
    let out = dir.path().join("gen");
    let args = [
        "render",
        "--manifest",
        m.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, stdout, err) = run(&args, dir.path());
    assert_eq!(code, 0, "{stdout}{err}");
    let env_file = out.join(".orders-db-postgres.env");
    let secret = std::fs::read_to_string(&env_file).unwrap();
    let password = secret
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .unwrap()
        .to_string();
    assert_eq!(password.len(), 48, "a random password: {password}");
    assert!(secret.contains(&format!(
        "DATABASE_URL=postgres://shop:{password}@127.0.0.1:5432/shop"
    )));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("docker-compose.yml")).unwrap())
            .unwrap();
    let pg = &compose["services"]["orders-db-postgres"];
    assert_eq!(pg["image"], "postgres:17.6-bookworm");
    assert_eq!(pg["env_file"][0], ".orders-db-postgres.env");
    assert_eq!(pg["ports"][0], "127.0.0.1:5432:5432");
    assert_eq!(pg["healthcheck"]["test"][1], "pg_isready -U shop -d shop");
    assert!(compose["volumes"]["orders-db-postgres-data"].is_mapping());

    // No rendered file holds the password; the marker lists the kept file.
    let mut files = 0;
    for f in walk(&out) {
        if f == env_file {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(
            !text.contains(&password),
            "{} holds the password",
            f.display()
        );
        files += 1;
    }
    assert!(files > 15, "{files} files");
    let marker = std::fs::read_to_string(out.join(".telltale-render")).unwrap();
    assert!(
        marker.lines().any(|l| l == ".orders-db-postgres.env"),
        "{marker}"
    );

    // Kept across renders; `--check` ignores it.
    let (code, stdout, err) = run(&args, dir.path());
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(
        stdout.contains(".orders-db-postgres.env (kept)"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), secret);
    let mut check = args.to_vec();
    check.push("--check");
    let (code, stdout, err) = run(&check, dir.path());
    assert_eq!(code, 0, "{stdout}{err}");

    // The Deployment reads the DSN and the payments key from a Secret; the
    // payments URL, which has a default, may be absent.
    let deploy = std::fs::read_to_string(out.join("kubernetes/deployment.yaml")).unwrap();
    // Kubernetes' own schemas (offline, in the venv scripts/install-test-deps makes).
    let validator = shop_dir().join("../../.venv/bin/kubernetes-validate");
    let out_k = std::process::Command::new(&validator)
        .args(["--strict", "-k", "1.34"])
        .arg(out.join("kubernetes/deployment.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("{} is required: {e}", validator.display()));
    assert!(
        out_k.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out_k.stdout),
        String::from_utf8_lossy(&out_k.stderr)
    );
    for want in [
        r#"{"name":"DATABASE_URL","valueFrom":{"secretKeyRef":{"name":"shop-dependencies","key":"orders_db-url"}}}"#,
        r#"{"name":"PAYMENTS_URL","valueFrom":{"secretKeyRef":{"name":"shop-dependencies","key":"payments-url","optional":true}}}"#,
        r#"{"name":"SHOP_PAYMENTS_KEY","valueFrom":{"secretKeyRef":{"name":"shop-dependencies","key":"payments-x-api-key"}}}"#,
    ] {
        assert!(deploy.contains(want), "missing {want} in:\n{deploy}");
    }
}
