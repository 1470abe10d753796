//! Why a Prometheus query returned nothing.
//!
//! ```text
//! job not scraped? ─► condition (comparison, or and/or/unless of them)?
//!                        ├─ its operand has series ─► "the condition does not hold"
//!                        └─ its operand is empty ──► the selector reasons, for the operand
//!                     else the selector reasons: metric absent, not for the job, label mismatch
//! ```
//!
//! An empty comparison (`up == 0`, `max(x) > 90`) is a condition that does
//! not hold, not a selector that matches nothing: only an empty selector
//! gets the selector reasons.

use super::api::{Api, Failure};
use crate::model::lint::SCRAPE_SERIES;
use crate::model::promql;
use promql_parser::parser::token::{T_LAND, T_LOR, T_LUNLESS};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};

/// What kind of filter an expression is, when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A comparison (without `bool`) of `operand`, the vector it filters.
    Compare { operand: String },
    /// `and` / `or` / `unless` of conditions (or a comparison of scalars).
    Combined,
}

/// `expr` as a condition, if its top level is one: a comparison without
/// `bool`, or a set operation whose result is only what conditions keep.
pub fn condition(expr: &str) -> Option<Condition> {
    classify(&parser::parse(expr).ok()?)
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

fn classify(e: &Expr) -> Option<Condition> {
    let Expr::Binary(b) = unparen(e) else {
        return None;
    };
    if b.op.is_comparison_operator() && !b.return_bool() {
        let operand = [&*b.lhs, &*b.rhs]
            .into_iter()
            .map(unparen)
            .find(|x| x.value_type() == ValueType::Vector);
        return Some(operand.map_or(Condition::Combined, |x| Condition::Compare {
            operand: x.to_string(),
        }));
    }
    let lhs = classify(&b.lhs).is_some();
    let holds = match b.op.id() {
        T_LAND | T_LUNLESS => lhs,
        T_LOR => lhs && classify(&b.rhs).is_some(),
        _ => false,
    };
    holds.then_some(Condition::Combined)
}

/// The selector `job="..."` of `job`.
fn job_selector(job: &str) -> String {
    format!("job=\"{}\"", job.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Why `expr` returned nothing, asked of Prometheus.
pub(super) async fn diagnose(api: &Api, job: &str, expr: &str) -> Result<String, Failure> {
    let job_sel = job_selector(job);
    if api.instant(&format!("up{{{job_sel}}}")).await? == 0 {
        return Ok(format!(
            "job not scraped: this Prometheus has no up{{{job_sel}}} (check its scrape config's job_name)"
        ));
    }
    match condition(expr) {
        Some(Condition::Compare { operand }) => {
            let n = api.instant(&operand).await?;
            if n > 0 {
                Ok(format!(
                    "the condition does not hold: {operand} has {n} series, none passes the comparison"
                ))
            } else {
                selector_reason(api, &job_sel, &operand).await
            }
        }
        Some(Condition::Combined) => Ok("the condition does not hold".into()),
        None => selector_reason(api, &job_sel, expr).await,
    }
}

/// Why a selection is empty: a metric is absent; a metric exists but not
/// for the job; else a label matcher or aggregation selects nothing.
async fn selector_reason(api: &Api, job_sel: &str, expr: &str) -> Result<String, Failure> {
    let mut metrics: Vec<String> = promql::selectors(expr)
        .into_iter()
        .map(|s| s.metric)
        .filter(|n| !n.contains(':') && !SCRAPE_SERIES.contains(&n.as_str()))
        .collect();
    metrics.dedup();
    for name in &metrics {
        if api
            .instant(&format!("count({{__name__=\"{name}\"}})"))
            .await?
            == 0
        {
            return Ok(format!("metric absent: no series of {name} at all"));
        }
        if api
            .instant(&format!("count({{__name__=\"{name}\", {job_sel}}})"))
            .await?
            == 0
        {
            return Ok(format!(
                "label mismatch: {name} has series, but none with {job_sel}"
            ));
        }
    }
    Ok(if metrics.is_empty() {
        "no series match (the expression selects only recorded or synthetic series)".into()
    } else {
        format!(
            "label mismatch: {} exist for the job, but the query's label matchers select none",
            metrics.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(operand: &str) -> Option<Condition> {
        Some(Condition::Compare {
            operand: operand.into(),
        })
    }

    #[test]
    fn comparisons_are_conditions_with_their_operand() {
        assert_eq!(condition("up == 0"), compare("up"));
        assert_eq!(
            condition("max by (job, instance) (system_memory_usage_percent) > 90"),
            compare("max by (job, instance) (system_memory_usage_percent)")
        );
        assert_eq!(condition("90 < (sum(x))"), compare("sum(x)"));
    }

    #[test]
    fn set_operations_of_conditions_are_conditions() {
        let burn = r#"(a:r5m{slo="x"} > (14.4 * (1 - 0.99)) and a:r1h{slo="x"} > (14.4 * (1 - 0.99))) or (a:r30m{slo="x"} > 6 and a:r6h{slo="x"} > 6)"#;
        assert_eq!(condition(burn), Some(Condition::Combined));
        assert_eq!(condition("x > 1 unless y"), Some(Condition::Combined));
    }

    #[test]
    fn selections_and_bool_comparisons_are_not() {
        for e in [
            "up",
            "sum(rate(x[5m]))",
            "up == bool 0",
            "x / y",
            "x > 1 or y",
            "not promql (",
        ] {
            assert_eq!(condition(e), None, "{e}");
        }
    }
}
