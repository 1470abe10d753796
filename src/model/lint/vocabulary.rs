//! The names the lint checks against: Grafana's panel types and units, the
//! datasources a panel may name, and the series Prometheus and telltale
//! expose beside the declared metrics.

use crate::manifest::MetricType;

/// Panel datasources, by manifest name (their uids are `stack.datasources.<name>`).
pub const DATASOURCES: &[&str] = &["prometheus", "loki", "json"];

/// Panel types Grafana 11 ships (core panels).
pub const PANEL_TYPES: &[&str] = &[
    "alertlist",
    "annolist",
    "barchart",
    "bargauge",
    "candlestick",
    "canvas",
    "dashlist",
    "datagrid",
    "flamegraph",
    "gauge",
    "geomap",
    "heatmap",
    "histogram",
    "logs",
    "news",
    "nodeGraph",
    "piechart",
    "stat",
    "state-timeline",
    "status-history",
    "table",
    "text",
    "timeseries",
    "traces",
    "trend",
    "xychart",
];

/// Grafana's unit ids (the common ones of every category); a custom unit
/// is written `suffix:…`, `prefix:…`, `si:…`, `count:…`, `currency:…` or `time:…`.
pub const UNITS: &[&str] = &[
    "none",
    "short",
    "percent",
    "percentunit",
    "humidity",
    "dB",
    "hex0x",
    "hex",
    "sci",
    "locale",
    "pixel",
    "ns",
    "µs",
    "ms",
    "s",
    "m",
    "h",
    "d",
    "dtdurationms",
    "dtdurations",
    "dthms",
    "dtdhms",
    "timeticks",
    "clockms",
    "clocks",
    "cps",
    "ops",
    "reqps",
    "rps",
    "wps",
    "iops",
    "eventsps",
    "messagesps",
    "recps",
    "rowsps",
    "cpm",
    "opm",
    "rpm",
    "wpm",
    "eventspm",
    "bits",
    "bytes",
    "kbytes",
    "mbytes",
    "gbytes",
    "tbytes",
    "pbytes",
    "decbits",
    "decbytes",
    "deckbytes",
    "decmbytes",
    "decgbytes",
    "dectbytes",
    "decpbytes",
    "pps",
    "binBps",
    "Bps",
    "binbps",
    "bps",
    "KiBs",
    "Kibits",
    "KBs",
    "Kbits",
    "MiBs",
    "Mibits",
    "MBs",
    "Mbits",
    "GiBs",
    "Gibits",
    "GBs",
    "Gbits",
    "TiBs",
    "Tibits",
    "TBs",
    "Tbits",
    "bool",
    "bool_yes_no",
    "bool_on_off",
    "currencyUSD",
    "currencyEUR",
    "currencyGBP",
    "currencyJPY",
    "celsius",
    "fahrenheit",
    "kelvin",
    "hertz",
    "watt",
    "kwatt",
    "volt",
    "amp",
    "dateTimeAsIso",
    "dateTimeAsUS",
    "dateTimeFromNow",
];

pub(super) const CUSTOM_UNIT_PREFIXES: &[&str] =
    &["suffix:", "prefix:", "si:", "count:", "currency:", "time:"];

/// Series Prometheus itself writes for every scrape target (gauges).
pub const SCRAPE_SERIES: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Families telltale itself exposes beside the declared ones (the process
/// collector's and its own health), with their types and labels: panels
/// and alerts may use them (a test checks this list against `/metrics`).
pub const OWN_FAMILIES: &[(&str, MetricType, &[&str])] = &[
    ("process_cpu_seconds_total", MetricType::Counter, &[]),
    ("process_open_fds", MetricType::Gauge, &[]),
    ("process_max_fds", MetricType::Gauge, &[]),
    ("process_virtual_memory_bytes", MetricType::Gauge, &[]),
    ("process_virtual_memory_max_bytes", MetricType::Gauge, &[]),
    ("process_resident_memory_bytes", MetricType::Gauge, &[]),
    ("process_start_time_seconds", MetricType::Gauge, &[]),
    ("process_threads", MetricType::Gauge, &[]),
    (
        "telltale_log_write_errors_total",
        MetricType::Counter,
        &["output"],
    ),
    (
        "telltale_log_lines_lost_total",
        MetricType::Counter,
        &["output"],
    ),
    ("telltale_log_lines_dropped_total", MetricType::Counter, &[]),
    ("telltale_log_writer_up", MetricType::Gauge, &[]),
    (
        "telltale_trace_spans_exported_total",
        MetricType::Counter,
        &[],
    ),
    (
        "telltale_trace_spans_dropped_total",
        MetricType::Counter,
        &["reason"],
    ),
    ("telltale_accept_errors_total", MetricType::Counter, &[]),
    (
        "telltale_dependency_request_duration_seconds",
        MetricType::Histogram,
        &["dependency", "operation", "outcome"],
    ),
    (
        "telltale_dependency_requests_in_flight",
        MetricType::Gauge,
        &["dependency"],
    ),
    ("telltale_dependency_up", MetricType::Gauge, &["dependency"]),
    (
        "telltale_dependency_pool_size",
        MetricType::Gauge,
        &["dependency"],
    ),
    (
        "telltale_dependency_pool_idle",
        MetricType::Gauge,
        &["dependency"],
    ),
    (
        "telltale_dependency_pool_waiting",
        MetricType::Gauge,
        &["dependency"],
    ),
    (
        "telltale_dependency_retries_total",
        MetricType::Counter,
        &["dependency"],
    ),
    (
        "telltale_connections_timed_out_total",
        MetricType::Counter,
        &[],
    ),
    (
        "telltale_config_last_reload_successful",
        MetricType::Gauge,
        &[],
    ),
    (
        "telltale_config_last_reload_success_timestamp_seconds",
        MetricType::Gauge,
        &[],
    ),
    (
        "telltale_config_reloads_total",
        MetricType::Counter,
        &["result"],
    ),
];

/// Values the server writes in the `level` log field.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warning", "error"];
