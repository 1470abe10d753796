//! Typed deserialization that keeps going after the first error: each
//! section, and each item of a list, is read on its own; a bad field is
//! reported at its `file:line:column`, set aside and the value read again,
//! so one run reports every structural error.

use super::Source;
use crate::manifest::diag::Diagnostics;
use crate::manifest::document::*;
use crate::manifest::{dependencies, traces};
use serde::de::DeserializeOwned;
use serde_yaml::Value;

const SECTIONS: &[&str] = &[
    "service",
    "auth",
    "endpoints",
    "tracing",
    "dependencies",
    "metrics",
    "logging",
    "dashboard",
    "objectives",
    "alerts",
    "rules",
    "stack",
    "datasource",
    "kubernetes",
];

/// The manifest as far as it can be read: a bad field is reported and left
/// at its default, a bad list item reported and dropped (its name kept in
/// `dropped`). `None` only without a readable `service`.
pub(super) fn deserialize_manifest(
    src: &Source,
    root: Value,
    errs: &mut Diagnostics,
    dropped: &mut Vec<String>,
) -> Option<Manifest> {
    let Value::Mapping(mut map) = root else {
        errs.push(src.error(
            "",
            "the manifest must be a YAML mapping with a `service` section",
        ));
        return None;
    };
    for k in map.keys() {
        let key = k.as_str().unwrap_or("?");
        if !SECTIONS.contains(&key) {
            errs.push(src.key_error(
                key,
                format!("unknown section `{key}` (known: {})", SECTIONS.join(", ")),
            ));
        }
    }
    let mut take = |k: &str| map.remove(k).unwrap_or(Value::Null);
    let service = match take("service") {
        Value::Null => {
            errs.push(src.error("", "missing required section `service`"));
            None
        }
        v => de_best::<Service>(src, &v, "service", errs),
    };
    let auth = de_or_default::<Auth>(src, take("auth"), "auth", errs);
    let endpoints = de_list::<Endpoint>(src, take("endpoints"), "endpoints", errs, dropped);
    let tracing = de_or_default::<traces::Tracing>(src, take("tracing"), "tracing", errs);
    let dependencies = de_list::<dependencies::Dependency>(
        src,
        take("dependencies"),
        "dependencies",
        errs,
        dropped,
    );
    let metrics = de_list::<Metric>(src, take("metrics"), "metrics", errs, dropped);
    let logging = de_or_default::<Logging>(src, take("logging"), "logging", errs);
    let objectives = de_list::<Objective>(src, take("objectives"), "objectives", errs, dropped);
    let alerts = de_list::<Alert>(src, take("alerts"), "alerts", errs, dropped);
    let rules = de_or_default::<RuleSettings>(src, take("rules"), "rules", errs);
    let stack = de_or_default::<Stack>(src, take("stack"), "stack", errs);
    let datasource =
        de_or_default::<DatasourceSection>(src, take("datasource"), "datasource", errs);
    let kubernetes = de_or_default::<Kubernetes>(src, take("kubernetes"), "kubernetes", errs);
    let dashboard = match take("dashboard") {
        Value::Mapping(mut d) => {
            let panels = d.remove("panels").unwrap_or(Value::Null);
            let mut dash = de_or_default::<Dashboard>(src, Value::Mapping(d), "dashboard", errs);
            let panels = de_list::<Panel>(src, panels, "dashboard.panels", errs, dropped);
            if let (Some(d), Some(p)) = (dash.as_mut(), panels) {
                d.panels = p;
            }
            dash
        }
        other => de_or_default::<Dashboard>(src, other, "dashboard", errs),
    };
    Some(Manifest {
        service: service?,
        auth: auth.unwrap_or_default(),
        endpoints: endpoints.unwrap_or_default(),
        tracing: tracing.unwrap_or_default(),
        dependencies: dependencies.unwrap_or_default(),
        metrics: metrics.unwrap_or_default(),
        logging: logging.unwrap_or_default(),
        dashboard: dashboard.unwrap_or_default(),
        objectives: objectives.unwrap_or_default(),
        alerts: alerts.unwrap_or_default(),
        rules: rules.unwrap_or_default(),
        stack: stack.unwrap_or_default(),
        datasource: datasource.unwrap_or_default(),
        kubernetes: kubernetes.unwrap_or_default(),
    })
}

fn de_or_default<T: DeserializeOwned + Default>(
    src: &Source,
    v: Value,
    path: &str,
    errs: &mut Diagnostics,
) -> Option<T> {
    if v.is_null() {
        return Some(T::default());
    }
    de_best(src, &v, path, errs)
}

/// Deserializes each element on its own, so one bad item does not hide the
/// next; an item that cannot be read at all is dropped (its name noted).
fn de_list<T: DeserializeOwned>(
    src: &Source,
    v: Value,
    path: &str,
    errs: &mut Diagnostics,
    dropped: &mut Vec<String>,
) -> Option<Vec<T>> {
    let items = match v {
        Value::Null => return Some(Vec::new()),
        Value::Sequence(items) => items,
        _ => {
            errs.push(src.error(path, "expected a list"));
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match de_best::<T>(src, item, &format!("{path}[{i}]"), errs) {
            Some(t) => out.push(t),
            None => dropped.extend(
                ["name", "path", "title"]
                    .iter()
                    .find_map(|k| item.get(*k).and_then(Value::as_str))
                    .map(str::to_string),
            ),
        }
    }
    Some(out)
}

/// Most errors reported for one value before giving up on it.
const MAX_ERRORS_PER_VALUE: usize = 64;

/// One step of a serde path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// `targets[0].expr` → [Key targets, Index 0, Key expr]; `.` → [].
pub(super) fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    if path == "." {
        return out;
    }
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            if let Ok(i) = r[..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &r[end + 1..];
        }
    }
    out
}

/// Removes the mapping entry at `steps` from `v` (the field that failed),
/// or the list item there if it is a scalar (a bad host in a list of
/// hosts) or `whole` is set (an item that cannot be read at all), so that
/// deserializing again finds the next error. `false` when the path ends at
/// neither.
fn remove_at(v: &mut Value, steps: &[Step], whole: bool) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut cur = v;
    for s in parents {
        cur = match (s, cur) {
            (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(next) => next,
                None => return false,
            },
            (Step::Index(i), Value::Sequence(items)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Mapping(m)) => m.shift_remove(k.as_str()).is_some(),
        (Step::Index(i), Value::Sequence(items))
            if items
                .get(*i)
                .is_some_and(|x| whole || (!x.is_mapping() && !x.is_sequence())) =>
        {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// `steps` in the value as first given: the list items set aside before
/// (`gone`: each list's steps, in the original's indexes, and the item's
/// original index) shift the indexes after them.
fn original(steps: &[Step], gone: &[(Vec<Step>, usize)]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for s in steps {
        let step = match s {
            Step::Index(i) => {
                let mut before: Vec<usize> = gone
                    .iter()
                    .filter(|(list, _)| *list == out)
                    .map(|(_, j)| *j)
                    .collect();
                before.sort_unstable();
                let mut i = *i;
                for j in before {
                    if j <= i {
                        i += 1;
                    }
                }
                Step::Index(i)
            }
            Step::Key(k) => Step::Key(k.clone()),
        };
        out.push(step);
    }
    out
}

/// Steps as a serde path: `targets[0].expr`, `.` for none.
fn path_of(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

/// Deserializes `v` as `T`; an error is located through its serde path.
/// After an error the offending field is set aside and `v` is read again,
/// so that every mistake in one value is reported, not only the first.
pub(crate) fn de_value<T: DeserializeOwned>(
    src: &Source,
    v: &Value,
    path: &str,
    errs: &mut Diagnostics,
) -> Option<T> {
    match de_inner(src, v, path, errs) {
        (Some(t), true) => Some(t),
        _ => None,
    }
}

/// Like [`de_value`], but the value read with its bad fields set aside
/// (at their defaults) is returned too: the rest is still checked.
fn de_best<T: DeserializeOwned>(
    src: &Source,
    v: &Value,
    path: &str,
    errs: &mut Diagnostics,
) -> Option<T> {
    de_inner(src, v, path, errs).0
}

/// The value, and whether it was read without any error.
fn de_inner<T: DeserializeOwned>(
    src: &Source,
    v: &Value,
    path: &str,
    errs: &mut Diagnostics,
) -> (Option<T>, bool) {
    let mut v = v.clone();
    // Inner paths of the fields set aside: a later "missing field" for one
    // of them is a consequence, not a new mistake.
    let mut removed: Vec<String> = Vec::new();
    // List items set aside: the list's steps and the item's index, both
    // in the value as first given.
    let mut gone: Vec<(Vec<Step>, usize)> = Vec::new();
    for _ in 0..MAX_ERRORS_PER_VALUE {
        let e = match serde_path_to_error::deserialize::<_, T>(v.clone()) {
            Ok(t) => return (Some(t), removed.is_empty() && gone.is_empty()),
            Err(e) => e,
        };
        let here = e.path().to_string();
        let orig = original(&steps(&here), &gone);
        let inner = if gone.is_empty() {
            here.clone()
        } else {
            path_of(&orig)
        };
        let msg = strip_location(&e.inner().to_string());
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            let key = if inner == "." {
                field.to_string()
            } else {
                format!("{inner}.{field}")
            };
            if removed.contains(&key) {
                // An item of a list that cannot be read without the field
                // set aside: set the whole item aside (its error is out).
                let item = steps(&here);
                if let (Some(Step::Index(_)), Some((Step::Index(i), list))) =
                    (item.last(), orig.split_last())
                {
                    if remove_at(&mut v, &item, true) {
                        gone.push((list.to_vec(), *i));
                        continue;
                    }
                }
                return (None, false);
            }
        }
        let (at, key) = report_error(src, path, &inner, &here, msg, errs);
        if !remove_at(&mut v, &at, false) {
            return (None, false);
        }
        if let (Some(Step::Index(_)), Some((Step::Index(i), list))) = (at.last(), orig.split_last())
        {
            gone.push((list.to_vec(), *i));
        }
        removed.push(key);
    }
    (None, false)
}

/// Reports one error of `de_inner` at its full path (`inner`: the path in
/// the value as first given; `here`: serde's path in the value as it is
/// now). Returns the steps to the value to set aside, and the inner path it
/// is set aside under.
fn report_error(
    src: &Source,
    path: &str,
    inner: &str,
    here: &str,
    msg: String,
    errs: &mut Diagnostics,
) -> (Vec<Step>, String) {
    let full = match inner {
        "." => path.to_string(),
        p if p.starts_with('[') => format!("{path}{p}"),
        p if path.is_empty() => p.to_string(),
        p => format!("{path}.{p}"),
    };
    // "unknown field `x`" points at the offending key itself.
    let unknown = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string);
    let mut at = steps(here);
    if let Some(field) = &unknown {
        // serde_path_to_error already ends the path with the field.
        let key_path = if full == *field || full.ends_with(&format!(".{field}")) {
            full.clone()
        } else {
            if at.last() != Some(&Step::Key(field.clone())) {
                at.push(Step::Key(field.clone()));
            }
            if full.is_empty() {
                field.to_string()
            } else {
                format!("{full}.{field}")
            }
        };
        errs.push(src.key_error(&key_path, msg));
    } else {
        errs.push(src.error(&full, msg));
    }
    let key = if inner == "." {
        String::new()
    } else {
        inner.to_string()
    };
    let key = match &unknown {
        Some(f) if !key.ends_with(f.as_str()) => {
            if key.is_empty() {
                f.clone()
            } else {
                format!("{key}.{f}")
            }
        }
        _ => key,
    };
    (at, key)
}

/// serde_yaml appends " at line L column C"; the diagnostic carries that already.
pub(super) fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
