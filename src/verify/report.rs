//! What `verify` found, as a table for people or JSON for scripts (same
//! content): one row per query, then the counts, the skipped panels among
//! them. A panel that shows exemplars has its exemplar count in the
//! `exemplars` column (`-` for the other queries).

use super::{AlertState, Exemplars, QueryOutcome, QuerySource, Row};
use serde_json::{json, Value as Json};

/// How many rows of each result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RowCounts {
    pub data: usize,
    pub empty: usize,
    pub empty_panels: usize,
    pub errors: usize,
    pub firing: usize,
    pub pending: usize,
    pub inactive: usize,
    pub skipped: usize,
    /// Panel queries that show exemplars, and how many of them got any.
    pub exemplar_panels: usize,
    pub with_exemplars: usize,
}

impl RowCounts {
    pub fn of(rows: &[Row]) -> RowCounts {
        let mut c = RowCounts::default();
        for r in rows {
            match &r.outcome {
                QueryOutcome::Data(_) => c.data += 1,
                QueryOutcome::Empty(_) => {
                    c.empty += 1;
                    if r.query.kind == QuerySource::Panel {
                        c.empty_panels += 1;
                    }
                }
                QueryOutcome::Error(_) => c.errors += 1,
                QueryOutcome::Alert { state, .. } => match state {
                    AlertState::Firing => c.firing += 1,
                    AlertState::Pending => c.pending += 1,
                    AlertState::Inactive => c.inactive += 1,
                },
                QueryOutcome::Skipped(_) => c.skipped += 1,
            }
            if let Some(e) = &r.exemplars {
                c.exemplar_panels += 1;
                if matches!(e, Exemplars::Found(n) if *n > 0) {
                    c.with_exemplars += 1;
                }
            }
        }
        c
    }
}

fn kind_name(k: QuerySource) -> &'static str {
    match k {
        QuerySource::Panel => "panel",
        QuerySource::Record => "rule",
        QuerySource::Alert => "alert",
    }
}

/// (result, series, reason) of a row, as both reports show them.
fn cells(o: &QueryOutcome) -> (&'static str, Option<usize>, Option<&str>) {
    match o {
        QueryOutcome::Data(n) => ("data", Some(*n), None),
        QueryOutcome::Empty(why) => ("empty", Some(0), Some(why)),
        QueryOutcome::Error(e) => ("error", None, Some(e)),
        QueryOutcome::Alert {
            state,
            series,
            reason,
        } => (state.as_str(), Some(*series), reason.as_deref()),
        QueryOutcome::Skipped(why) => ("skipped", None, Some(why)),
    }
}

/// The machine-readable report.
pub fn json_report(rows: &[Row], failed: bool) -> Json {
    let items: Vec<Json> = rows
        .iter()
        .map(|r| {
            let (result, series, reason) = cells(&r.outcome);
            let (exemplars, exemplars_error) = match &r.exemplars {
                Some(Exemplars::Found(n)) => (json!(n), None),
                Some(Exemplars::Error(e)) => (Json::Null, Some(e.as_str())),
                None => (Json::Null, None),
            };
            json!({
                "kind": kind_name(r.query.kind),
                "name": r.query.name,
                "backend": r.query.backend,
                "query": r.query.expr,
                "result": result,
                "series": series.unwrap_or(0),
                "reason": reason,
                "shows_exemplars": r.exemplars.is_some(),
                "exemplars": exemplars,
                "exemplars_error": exemplars_error,
            })
        })
        .collect();
    let c = RowCounts::of(rows);
    json!({
        "passed": !failed,
        "queries": items,
        "counts": {
            "data": c.data,
            "empty": c.empty,
            "empty_panels": c.empty_panels,
            "errors": c.errors,
            "firing": c.firing,
            "pending": c.pending,
            "inactive": c.inactive,
            "skipped": c.skipped,
            "exemplar_panels": c.exemplar_panels,
            "with_exemplars": c.with_exemplars,
        },
    })
}

/// The table: one row per query, then a summary line.
pub fn table(rows: &[Row], prometheus: &str) -> String {
    let mut out = format!("verify against {prometheus}\n\n");
    let width = rows
        .iter()
        .map(|r| r.query.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 64);
    out.push_str(&format!(
        "{:<5}  {:<width$}  {:<8}  {:>6}  {:>9}  reason\n",
        "kind", "name", "result", "series", "exemplars"
    ));
    for r in rows {
        let name: String = r.query.name.chars().take(width).collect();
        let (result, series, reason) = cells(&r.outcome);
        let series = series.map_or("-".to_string(), |n| n.to_string());
        let (exemplars, why) = match &r.exemplars {
            Some(Exemplars::Found(n)) => (n.to_string(), None),
            Some(Exemplars::Error(e)) => ("error".to_string(), Some(e.as_str())),
            None => ("-".to_string(), None),
        };
        let reason = match (reason, why) {
            (Some(r), Some(w)) => format!("{r}; exemplars: {w}"),
            (None, Some(w)) => format!("exemplars: {w}"),
            (r, None) => r.unwrap_or_default().to_string(),
        };
        out.push_str(&format!(
            "{:<5}  {name:<width$}  {result:<8}  {series:>6}  {exemplars:>9}  {reason}\n",
            kind_name(r.query.kind),
        ));
    }
    out.push('\n');
    out.push_str(&summary(rows));
    out
}

/// `N queries: … with data, … empty …; alerts: …; … panels skipped`.
fn summary(rows: &[Row]) -> String {
    let c = RowCounts::of(rows);
    let mut s = format!(
        "{} queries: {} with data, {} empty ({} of them panels), {} errors",
        rows.len(),
        c.data,
        c.empty,
        c.empty_panels,
        c.errors
    );
    if c.firing + c.pending + c.inactive > 0 {
        s.push_str(&format!(
            "; alerts: {} firing, {} pending, {} inactive",
            c.firing, c.pending, c.inactive
        ));
    }
    if c.skipped > 0 {
        s.push_str(&format!(
            "; {} panel queries skipped (not checked)",
            c.skipped
        ));
    }
    if c.exemplar_panels > 0 {
        s.push_str(&format!(
            "; exemplars: {} of {} panel queries that show them have some",
            c.with_exemplars, c.exemplar_panels
        ));
    }
    s.push('\n');
    s
}
