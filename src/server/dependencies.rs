//! The started dependencies at run time: each one's health checked in the
//! background (never on a probe's call), its state in
//! `telltale_dependency_up` and in `/ready`, and a line logged when it goes
//! down and when it is back.

use crate::model::dependencies::{Checker, Running, ToStart};
use crate::model::Model;
use std::sync::Arc;

/// Starts `model`'s dependencies: their clients and metric handles, one
/// first health check each (so that `/ready` is right from the first
/// request), then a background task per dependency that checks it every
/// `check_every`. `None` when it declares none.
pub async fn start(model: &Model) -> Result<Option<Arc<Running>>, String> {
    let m = &model.manifest;
    if m.dependencies.is_empty() {
        return Ok(None);
    }
    let base_dir = model.source.base_dir.as_deref();
    let mut list = Vec::new();
    for (d, prepared) in m.dependencies.iter().zip(&model.dependencies) {
        let target = crate::model::dependencies::target(d, base_dir)
            .map_err(|e| format!("dependency {}: {e}", d.name))?;
        list.push(ToStart {
            dependency: d,
            prepared,
            target,
        });
    }
    let (running, checkers, shown) = Running::start(list, base_dir)?;
    let running = Arc::new(running);
    tracing::info!(target: "telltale::dependencies", dependencies = %shown.join(", "), "dependencies started");
    let first = checkers.iter().map(|c| check_once(&running, c));
    futures_util::future::join_all(first).await;
    for c in checkers {
        let running = running.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(c.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                check_once(&running, &c).await;
            }
        });
    }
    Ok(Some(running))
}

/// One health check of `c`'s dependency, within its timeout; logs a change.
async fn check_once(running: &Running, c: &Checker) {
    let result = match tokio::time::timeout(c.timeout, (c.check)()).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", c.timeout)),
    };
    let Some(e) = running.entries().get(c.index) else {
        return;
    };
    let first = e.first_check();
    let changed = e.set_up(result.is_ok());
    match result {
        Err(why) if changed || first => {
            tracing::warn!(target: "telltale::dependencies", dependency = %e.name, required = e.required, "dependency is down: {why}");
        }
        Ok(()) if changed => {
            tracing::info!(target: "telltale::dependencies", dependency = %e.name, "dependency is up");
        }
        _ => {}
    }
}
