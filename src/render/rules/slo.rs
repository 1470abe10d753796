//! The `<service>.slo.<objective>` groups: each objective's error ratio
//! over every burn-rate window, and its multi-window burn-rate alerts.

use super::*;

/// `<service>.slo.<objective>`: the error ratio recorded over every
/// burn-rate window, then the burn-rate alerts.
pub(super) fn slo_group(
    m: &Manifest,
    o: &Objective,
    job: &str,
    sel: &str,
    tests: &mut Vec<PromtoolAlertTest>,
) -> Result<Group, String> {
    let metric = &o.metric;
    let error_ratio = |win: &str| {
        match o.kind {
        ObjectiveKind::Availability => format!(
            "(sum(rate({metric}{{{sel}, status=~\"5..\"}}[{win}])) or vector(0)) / sum(rate({metric}{{{sel}}}[{win}]))"
        ),
        ObjectiveKind::Latency => format!(
            "1 - (sum(rate({metric}_bucket{{{sel}, le=\"{}\"}}[{win}])) / sum(rate({metric}_count{{{sel}}}[{win}])))",
            num(o.threshold_seconds.unwrap_or_default())
        ),
    }
    };
    let mut rules: Vec<Rule> = SLO_WINDOWS
        .iter()
        .map(|win| Rule {
            record: Some(ratio_record(win)),
            alert: None,
            expr: error_ratio(win),
            for_: None,
            labels: labels(&[("slo", &o.name)]),
            annotations: BTreeMap::new(),
        })
        .collect();
    let (firing, quiet) = slo_series(o, sel);
    for (kind, severity, pairs) in BURN_ALERTS {
        burn_alert(o, job, kind, severity, pairs, &firing, &quiet).push(m, &mut rules, tests)?;
    }
    Ok(Group {
        name: format!("{job}.slo.{}", o.name),
        rules,
    })
}

/// The promtool series under which an objective's burn-rate alerts fire,
/// and those under which they stay quiet.
fn slo_series(o: &Objective, sel: &str) -> (Vec<TestSeries>, Vec<TestSeries>) {
    let metric = &o.metric;
    match o.kind {
        ObjectiveKind::Availability => (
            vec![
                series(
                    format!("{metric}{{{sel}, instance=\"{TEST_INSTANCE}\", status=\"500\"}}"),
                    "0+6x180",
                ),
                series(
                    format!("{metric}{{{sel}, instance=\"{TEST_INSTANCE}\", status=\"200\"}}"),
                    "0+4x180",
                ),
            ],
            vec![
                series(
                    format!("{metric}{{{sel}, instance=\"{TEST_INSTANCE}\", status=\"500\"}}"),
                    "0x180",
                ),
                series(
                    format!("{metric}{{{sel}, instance=\"{TEST_INSTANCE}\", status=\"200\"}}"),
                    "0+10x180",
                ),
            ],
        ),
        ObjectiveKind::Latency => {
            let le = num(o.threshold_seconds.unwrap_or_default());
            let b = format!("{metric}_bucket{{{sel}, instance=\"{TEST_INSTANCE}\", le=\"{le}\"}}");
            let c = format!("{metric}_count{{{sel}, instance=\"{TEST_INSTANCE}\"}}");
            (
                vec![series(b.clone(), "0+1x180"), series(c.clone(), "0+10x180")],
                vec![series(b, "0+10x180"), series(c, "0+10x180")],
            )
        }
    }
}

/// One burn-rate alert of an objective: `kind` (page or ticket) fires when
/// either window pair burns the budget `factor` times too fast.
fn burn_alert(
    o: &Objective,
    job: &str,
    kind: &str,
    severity: &str,
    pairs: &[BurnWindows; 2],
    firing: &[TestSeries],
    quiet: &[TestSeries],
) -> AlertSpec {
    let budget = format!("(1 - {})", num(o.target));
    let metric = &o.metric;
    let what = match o.kind {
        ObjectiveKind::Availability => "of requests answered without a 5xx".to_string(),
        ObjectiveKind::Latency => format!(
            "of requests faster than {}s",
            num(o.threshold_seconds.unwrap_or_default())
        ),
    };
    let cond = |(short, long, factor): &BurnWindows| {
        format!(
            "({short_r}{{slo={n}}} > ({f} * {budget}) and {long_r}{{slo={n}}} > ({f} * {budget}))",
            short_r = ratio_record(short),
            long_r = ratio_record(long),
            n = escape::promql_string(&o.name),
            f = num(*factor),
        )
    };
    let expr = pairs.iter().map(cond).collect::<Vec<_>>().join(" or ");
    let [(s1, l1, f1), (s2, l2, f2)] = pairs;
    let days = o.window.get().as_secs_f64() / 86400.0;
    AlertSpec {
        name: format!("{}ErrorBudgetBurn{}", camel(&o.name), camel(kind)),
        expr,
        for_: None,
        severity: severity.to_string(),
        summary: format!(
            "{job}: {} objective ({}% {what} over {}) is burning its error budget {}",
            go_text(&o.name),
            percent(o.target),
            o.window,
            if kind == "page" { "fast" } else { "steadily" }
        ),
        description: format!(
            "The error ratio of {metric} is above {}x the budget ({}%) over {s1} and {l1}, or above {}x ({}%) over {s2} and {l2}. At {}x the whole {} budget lasts {:.1} days.",
            num(*f1),
            percent(f1 * (1.0 - o.target)),
            num(*f2),
            percent(f2 * (1.0 - o.target)),
            num(*f1),
            o.window,
            days / f1
        ),
        firing: firing.to_vec(),
        quiet: quiet.to_vec(),
        fired_labels: labels(&[("slo", &o.name)]),
        value: None,
        eval_time: if kind == "page" { "1h10m" } else { "2h10m" }.into(),
        metrics: vec![metric.clone()],
        prefer: (o.kind == ObjectiveKind::Availability).then_some("status"),
        panel: None,
        runbook: None,
    }
}
