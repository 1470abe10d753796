//! telltale's own health as metrics, beside the `process_*` families: what
//! the log writer has been through (`logging::health`).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGauge, Opts};

/// `telltale_log_write_errors_total{output}`, `telltale_log_lines_lost_total{output}`,
/// `telltale_log_lines_dropped_total` and `telltale_log_writer_up`, read
/// from the writer at each scrape.
pub struct LogWriter {
    errors: IntCounterVec,
    lost: IntCounterVec,
    dropped: IntCounterVec,
    up: IntGauge,
}

impl LogWriter {
    pub fn new() -> prometheus::Result<LogWriter> {
        Ok(LogWriter {
            errors: IntCounterVec::new(
                Opts::new(
                    "telltale_log_write_errors_total",
                    "Batches of log lines an output could not take (they were dropped).",
                ),
                &["output"],
            )?,
            lost: IntCounterVec::new(
                Opts::new(
                    "telltale_log_lines_lost_total",
                    "Log lines an output does not hold because a write of their batch failed \
                     (a line the failure cut short is taken back out of the file and counted here).",
                ),
                &["output"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "telltale_log_lines_dropped_total",
                    "Log lines dropped because the log writer was gone or stuck.",
                ),
                &[],
            )?,
            up: IntGauge::new(
                "telltale_log_writer_up",
                "1 while the log writer thread runs (or no file log is configured).",
            )?,
        })
    }

    fn refresh(&self) {
        let Some(h) = crate::logging::health() else {
            self.up.set(1);
            return;
        };
        use std::sync::atomic::Ordering::Relaxed;
        let catch_up = |c: prometheus::IntCounter, total: u64| {
            let have = c.get();
            if total > have {
                c.inc_by(total - have);
            }
        };
        catch_up(
            self.errors.with_label_values(&["file"]),
            h.file_errors.load(Relaxed),
        );
        catch_up(
            self.errors.with_label_values(&["console"]),
            h.console_errors.load(Relaxed),
        );
        catch_up(
            self.lost.with_label_values(&["file"]),
            h.file_lines_lost.load(Relaxed),
        );
        catch_up(
            self.lost.with_label_values(&["console"]),
            h.console_lines_lost.load(Relaxed),
        );
        catch_up(
            self.dropped.with_label_values::<&str>(&[]),
            h.dropped_lines.load(Relaxed),
        );
        self.up.set(i64::from(h.writer_alive()));
    }
}

impl Collector for LogWriter {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.errors.desc();
        d.extend(self.lost.desc());
        d.extend(self.dropped.desc());
        d.extend(self.up.desc());
        d
    }
    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        let mut f = self.errors.collect();
        f.extend(self.lost.collect());
        f.extend(self.dropped.collect());
        f.extend(self.up.collect());
        f
    }
}

/// `telltale_trace_spans_exported_total` and
/// `telltale_trace_spans_dropped_total{reason}` (`queue_full`,
/// `export_failed`), read from the span exporter at each scrape (zero
/// while tracing is off).
pub struct Traces {
    exported: prometheus::IntCounter,
    dropped: IntCounterVec,
}

impl Traces {
    pub fn new() -> prometheus::Result<Traces> {
        let dropped = IntCounterVec::new(
            Opts::new(
                "telltale_trace_spans_dropped_total",
                "Spans not exported: the export queue was full (queue_full), or their export failed or was rejected (export_failed).",
            ),
            &["reason"],
        )?;
        // Both series exist from the start, so that a rate over them works
        // before the first drop.
        for reason in ["queue_full", "export_failed"] {
            dropped.with_label_values(&[reason]);
        }
        Ok(Traces {
            exported: prometheus::IntCounter::new(
                "telltale_trace_spans_exported_total",
                "Spans the OTLP receiver accepted.",
            )?,
            dropped,
        })
    }
}

impl Collector for Traces {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.exported.desc();
        d.extend(self.dropped.desc());
        d
    }
    fn collect(&self) -> Vec<MetricFamily> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(s) = crate::traces::stats() {
            for (c, total) in [
                (self.exported.clone(), s.exported.load(Relaxed)),
                (
                    self.dropped.with_label_values(&["queue_full"]),
                    s.dropped_queue_full.load(Relaxed),
                ),
                (
                    self.dropped.with_label_values(&["export_failed"]),
                    s.dropped_export_failed.load(Relaxed),
                ),
            ] {
                let have = c.get();
                if total > have {
                    c.inc_by(total - have);
                }
            }
        }
        let mut f = self.exported.collect();
        f.extend(self.dropped.collect());
        f
    }
}

/// `telltale_accept_errors_total` and `telltale_connections_timed_out_total`,
/// read from the connection limits at each scrape.
pub struct Connections {
    counts: std::sync::Arc<super::limits::AcceptCounts>,
    accept_errors: prometheus::IntCounter,
    timed_out: prometheus::IntCounter,
}

impl Connections {
    pub fn new(counts: std::sync::Arc<super::limits::AcceptCounts>) -> prometheus::Result<Self> {
        Ok(Connections {
            counts,
            accept_errors: prometheus::IntCounter::new(
                "telltale_accept_errors_total",
                "Failed accept calls (e.g. at the fd limit); each is followed by a back-off.",
            )?,
            timed_out: prometheus::IntCounter::new(
                "telltale_connections_timed_out_total",
                "Connections closed because a header, body or idle deadline passed.",
            )?,
        })
    }
}

impl Collector for Connections {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.accept_errors.desc();
        d.extend(self.timed_out.desc());
        d
    }
    fn collect(&self) -> Vec<MetricFamily> {
        use std::sync::atomic::Ordering::Relaxed;
        for (c, total) in [
            (&self.accept_errors, self.counts.accept_errors.load(Relaxed)),
            (&self.timed_out, self.counts.timed_out.load(Relaxed)),
        ] {
            let have = c.get();
            if total > have {
                c.inc_by(total - have);
            }
        }
        let mut f = self.accept_errors.collect();
        f.extend(self.timed_out.collect());
        f
    }
}
