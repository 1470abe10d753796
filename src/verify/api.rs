//! The HTTP side of `verify`: one Prometheus or Loki, every answer read
//! with a bound ([`VERIFY_BODY_CAP`]) and every server-provided text made
//! printable before it reaches a row.

use super::AlertState;
use crate::fetch::{printable, read_capped, BodyError, VERIFY_BODY_CAP};
use serde_json::Value as Json;
use std::collections::HashMap;

/// A client of one Prometheus or Loki.
pub(super) struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// A failure to reach the server at all, or to read its answer (exit 2);
/// an answer larger than [`VERIFY_BODY_CAP`] (a query's row error, exit 2
/// for the reachability check); or an answer that is an error (the
/// query's own fault).
pub(super) enum Failure {
    Unreachable(String),
    TooLarge(String),
    Query(String),
}

/// Alerting rules' states from `/api/v1/rules`: by (group, name), and by
/// name alone (the most urgent state of that name) for rules loaded under
/// another group name.
#[derive(Debug, Default)]
pub(super) struct RuleStates {
    by_group: HashMap<(String, String), AlertState>,
    by_name: HashMap<String, AlertState>,
}

impl RuleStates {
    /// Reads the states out of a `/api/v1/rules` answer's `data`.
    pub fn from_data(data: &Json) -> RuleStates {
        let mut s = RuleStates::default();
        let groups = data["groups"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for g in groups {
            let group = g["name"].as_str().unwrap_or_default();
            for r in g["rules"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                let (Some(name), Some(state)) = (r["name"].as_str(), r["state"].as_str()) else {
                    continue;
                };
                let Some(state) = AlertState::parse(state) else {
                    continue;
                };
                s.by_group
                    .insert((group.to_string(), name.to_string()), state);
                let worst = s.by_name.entry(name.to_string()).or_insert(state);
                *worst = (*worst).max(state);
            }
        }
        s
    }

    /// The state of alert `name` of `group`, if that Prometheus has it loaded.
    pub fn get(&self, group: Option<&str>, name: &str) -> Option<AlertState> {
        group
            .and_then(|g| self.by_group.get(&(g.to_string(), name.to_string())))
            .or_else(|| self.by_name.get(name))
            .copied()
    }
}

impl Api {
    /// `GET base+path?query`: the `data` of a `"status": "success"` answer.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Json, Failure> {
        let url = format!("{}{path}", self.base);
        let request = self
            .http
            .get(&url)
            .query(query)
            .build()
            .map_err(|e| Failure::Unreachable(printable(&format!("{url}: {e}"))))?;
        let url = request.url().to_string();
        let r = self
            .http
            .execute(request)
            .await
            .map_err(|e| Failure::Unreachable(printable(&format!("{url}: {e}"))))?;
        let status = r.status();
        let bytes = read_capped(r, VERIFY_BODY_CAP).await.map_err(|e| match e {
            BodyError::TooLarge { .. } => Failure::TooLarge(e.to_string()),
            BodyError::Transport { .. } => Failure::Unreachable(e.to_string()),
        })?;
        let body: Json = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Unreachable(printable(&format!(
                "{url}: HTTP {status}, not a JSON answer: {e}"
            )))
        })?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(Failure::Query(printable(
                &body["error"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {status}"), String::from),
            )))
        }
    }

    /// Series returned by a Prometheus instant query.
    pub async fn instant(&self, expr: &str) -> Result<usize, Failure> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().map_or(0, Vec::len))
    }

    /// Exemplars `/api/v1/query_exemplars` has for `expr` over the last
    /// hour, over every series.
    pub async fn exemplars(&self, expr: &str) -> Result<usize, Failure> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let start = now.saturating_sub(3600);
        let data = self
            .get(
                "/api/v1/query_exemplars",
                &[
                    ("query", expr),
                    ("start", &start.to_string()),
                    ("end", &now.to_string()),
                ],
            )
            .await?;
        let series = data.as_array().map(Vec::as_slice).unwrap_or(&[]);
        Ok(series
            .iter()
            .map(|s| s["exemplars"].as_array().map_or(0, Vec::len))
            .sum())
    }

    /// Every alerting rule's state; none when this Prometheus cannot say.
    pub async fn rule_states(&self) -> Result<RuleStates, Failure> {
        match self.get("/api/v1/rules", &[("type", "alert")]).await {
            Ok(data) => Ok(RuleStates::from_data(&data)),
            Err(Failure::Query(_)) => Ok(RuleStates::default()),
            Err(e) => Err(e),
        }
    }

    /// Streams or series a Loki query returns over the last hour.
    pub async fn loki(&self, expr: &str) -> Result<usize, Failure> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let start = now.saturating_sub(3600 * 1_000_000_000);
        let data = self
            .get(
                "/loki/api/v1/query_range",
                &[
                    ("query", expr),
                    ("start", &start.to_string()),
                    ("end", &now.to_string()),
                    ("limit", "10"),
                ],
            )
            .await?;
        Ok(data["result"].as_array().map_or(0, Vec::len))
    }
}
