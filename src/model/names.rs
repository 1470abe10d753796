//! Manifest values that become Prometheus label values, or parts of rule
//! and alert names, are names: checked here, with their location, so that
//! no such value can carry PromQL, a Go template or YAML into a rendered
//! file (the renderers escape them too, as a second line).
//!
//! - `objectives[].name`: the `slo` label of the recording rules and the
//!   alerts, part of the burn-rate alert names and the rule group's name;
//! - every `severity` (`alerts[]`, `metrics[].alert`): a label Alertmanager
//!   routes on;
//! - `alerts[].test.labels` keys: label names;
//! - `stack.datasources.*`: Grafana uids, in links and Explore URLs.

use crate::manifest::{Diagnostics, Manifest, Source};

/// The longest name accepted (a Kubernetes label value's limit).
const MAX_NAME: usize = 63;

/// A name: a letter, then letters, digits, `_` or `-`, at most 63 in all.
pub fn is_name(s: &str) -> bool {
    s.len() <= MAX_NAME
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Grafana uid: 1-40 characters of `[A-Za-z0-9_-]`.
pub fn is_grafana_uid(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every name of `m` that must be one, with its location.
pub fn check(src: &Source, m: &Manifest, errs: &mut Diagnostics) {
    let name = |path: String, what: &str, v: &str, errs: &mut Diagnostics| {
        if !is_name(v) {
            errs.push(src.error(
                &path,
                format!(
                    "{v:?} is not a valid {what}: a letter, then letters, digits, `_` or `-` (at most {MAX_NAME}); it becomes a Prometheus label value"
                ),
            ));
        }
    };
    for (i, o) in m.objectives.iter().enumerate() {
        if !o.name.is_empty() {
            name(
                format!("objectives[{i}].name"),
                "objective name",
                &o.name,
                errs,
            );
        }
    }
    for (i, a) in m.alerts.iter().enumerate() {
        name(
            format!("alerts[{i}].severity"),
            "severity",
            &a.severity,
            errs,
        );
        if let Some(t) = &a.test {
            for k in t.labels.keys() {
                if !is_label_name(k) {
                    errs.push(src.error(
                        &format!("alerts[{i}].test.labels"),
                        format!("{k:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                    ));
                }
            }
        }
    }
    let ds = &m.stack.datasources;
    for (field, uid) in [
        ("prometheus", &ds.prometheus),
        ("loki", &ds.loki),
        ("json", &ds.json),
    ] {
        if !is_grafana_uid(uid) {
            errs.push(src.error(
                &format!("stack.datasources.{field}"),
                format!("{uid:?} is not a Grafana uid: 1-40 characters of [A-Za-z0-9_-] (it goes into links and URLs)"),
            ));
        }
    }
    for (i, metric) in m.metrics.iter().enumerate() {
        if let Some(s) = metric.alert.as_ref().and_then(|a| a.severity.as_deref()) {
            if !s.trim().is_empty() {
                name(format!("metrics[{i}].alert.severity"), "severity", s, errs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_closed() {
        for ok in [
            "critical",
            "page",
            "p1",
            "availability",
            "checkout-latency",
            "a_b",
        ] {
            assert!(super::is_name(ok), "{ok}");
        }
        for bad in [
            "",
            "{{ nope }}",
            "availability\", slo=\"never",
            "a b",
            "1st",
            "x\u{2028}",
            &"a".repeat(64),
        ] {
            assert!(!super::is_name(bad), "{bad}");
        }
        assert!(super::is_label_name("_x1") && !super::is_label_name("a-b"));
    }
}
