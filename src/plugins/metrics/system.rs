//! `system.cpu` and `system.memory`: host usage from sysinfo, sampled on a
//! timer (never per request).

use crate::manifest::{Diagnostics, Metric, MetricType};
use crate::model::kinds::{
    opts, Installer, MetricCtx, MetricSourceKind, PeriodicTask, PreparedSource,
};
use prometheus::Gauge;
use serde::Deserialize;
use std::sync::Arc;
use sysinfo::{MemoryRefreshKind, System};

pub struct CpuSource;
pub struct MemorySource;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Options {
    interval_seconds: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval_seconds: 5,
        }
    }
}

#[derive(Clone, Copy)]
enum What {
    Cpu,
    Memory,
}

struct PreparedSystemMetric {
    what: What,
    every: std::time::Duration,
}

fn prepare(ctx: &MetricCtx<'_>, what: What) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
    ctx.require_type(MetricType::Gauge)?;
    ctx.labels_within(&[])?;
    let o: Options = ctx.options()?;
    if o.interval_seconds == 0 || o.interval_seconds > 3600 {
        return Err(Diagnostics(vec![ctx.source.error(
            &ctx.at("options.interval_seconds"),
            format!("{} must be from 1 to 3600", o.interval_seconds),
        )]));
    }
    Ok(Arc::new(PreparedSystemMetric {
        what,
        every: std::time::Duration::from_secs(o.interval_seconds),
    }))
}

impl MetricSourceKind for CpuSource {
    fn name(&self) -> &'static str {
        "system.cpu"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        prepare(ctx, What::Cpu)
    }
}

impl MetricSourceKind for MemorySource {
    fn name(&self) -> &'static str {
        "system.memory"
    }
    fn prepare(&self, ctx: &MetricCtx<'_>) -> Result<Arc<dyn PreparedSource>, Diagnostics> {
        prepare(ctx, What::Memory)
    }
}

impl PreparedSource for PreparedSystemMetric {
    fn install(&self, m: &Metric, inst: &mut Installer<'_>) -> prometheus::Result<()> {
        let g = Gauge::with_opts(opts(m))?;
        inst.registry.register(Box::new(g.clone()))?;
        let mut sys = System::new()
            .map_err(|e| ::prometheus::Error::Msg(format!("cannot read system statistics: {e}")))?;
        let what = self.what;
        let mut tick = move || match what {
            What::Cpu => {
                sys.refresh_cpu_usage();
                g.set(sys.global_cpu_usage() as f64);
            }
            What::Memory => {
                sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
                let total = sys.total_memory();
                if total > 0 {
                    g.set(sys.used_memory() as f64 * 100.0 / total as f64);
                }
            }
        };
        // A first value right away, so /metrics is never empty of it.
        tick();
        inst.samplers.push(PeriodicTask {
            every: self.every,
            tick: Box::new(tick),
        });
        Ok(())
    }
}
