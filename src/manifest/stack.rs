//! `stack:` and `kubernetes:` in the manifest: the monitoring containers
//! docker-compose runs, service discovery, and the Kubernetes objects.

use super::document::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which log shipper docker-compose runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Shipper {
    Promtail,
    #[default]
    Alloy,
}

/// Where docker-compose publishes the stack's ports on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Publish {
    /// On 127.0.0.1 only: Prometheus (with its lifecycle API), Loki and the
    /// shipper have no authentication.
    #[default]
    Loopback,
    /// On every interface of the host.
    All,
}

impl Publish {
    /// The host address compose binds published ports to.
    pub fn address(self) -> &'static str {
        match self {
            Publish::Loopback => "127.0.0.1",
            Publish::All => "0.0.0.0",
        }
    }
}

/// `stack`: ports, images and settings of the monitoring containers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Stack {
    /// How containers reach the host running telltale.
    pub service_host: Host,
    pub network: String,
    pub scrape_interval: PromDuration,
    pub evaluation_interval: PromDuration,
    pub shipper: Shipper,
    /// Where compose publishes Prometheus, Loki and the shipper: `loopback`
    /// (127.0.0.1, the default: they have no authentication) or `all`.
    pub publish: Publish,
    /// Where compose publishes Grafana, which keeps its login: `loopback`
    /// (the default) or `all`.
    pub publish_grafana: Publish,
    pub prometheus: Component,
    pub loki: Component,
    pub promtail: Component,
    pub alloy: Component,
    pub grafana: Component,
    /// Grafana Tempo, the trace store; `port` is its HTTP API (Grafana's
    /// datasource).
    pub tempo: Component,
    /// Tempo's OTLP receivers. The HTTP one is published like the other
    /// ports (`publish`), so that a service on the host exports to
    /// `http://127.0.0.1:<otlp.http>` (`tracing.endpoint`).
    pub otlp: OtlpPorts,
    /// How long Tempo keeps traces (its compactor's `block_retention`),
    /// e.g. `14d`; whole seconds, at least `1h`.
    pub traces_retention: PromDuration,
    /// Grafana's address in alert links (`runbook_url` aside): default
    /// `http://localhost:<grafana.port>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grafana_url: Option<HttpUrl>,
    /// Alertmanager address (`host:port`), if one is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<HostPort>,
    /// Extra scrape jobs besides the service itself.
    pub extra_targets: Vec<ScrapeTarget>,
    /// How Prometheus finds the service's instances (replicas).
    pub discovery: Discovery,
    /// Remote-write endpoints (Mimir, Thanos Receive, any Prometheus
    /// remote-write receiver) the rendered Prometheus sends every sample to.
    pub remote_write: Vec<RemoteWrite>,
    pub datasources: DatasourceUids,
}

/// `stack.discovery`: how Prometheus finds the instances of the service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Discovery {
    /// `static`: the targets written into prometheus.yml. `file`: a rendered
    /// file_sd file, `prometheus/targets/<job>/telltale.yml`, which Prometheus
    /// re-reads (operators may rewrite it, or add files beside it, to add a
    /// replica without a render). `dns`: DNS service discovery of `names`.
    #[serde(rename = "type")]
    pub kind: DiscoveryKind,
    /// The instances, `host:port` each (static and file). Default: one,
    /// `<stack.service_host>:<service.port>`. Each is its `instance` label.
    pub targets: Vec<HostPort>,
    /// DNS names to query (dns only), e.g. `_http._tcp.api.example.internal`.
    pub names: Vec<DnsName>,
    /// DNS record type (dns only): `SRV` (port from the record), `A` or `AAAA`.
    pub record: DnsRecord,
    /// Port of the instances an A or AAAA record names; default `service.port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// How often file and DNS discovery are re-read, e.g. `30s`.
    pub refresh_interval: PromDuration,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            kind: DiscoveryKind::Static,
            targets: Vec::new(),
            names: Vec::new(),
            record: DnsRecord::Srv,
            port: None,
            refresh_interval: PromDuration::from_secs(30),
        }
    }
}

/// `stack.discovery.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    #[default]
    Static,
    File,
    Dns,
}

/// `stack.discovery.record`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecord {
    #[default]
    Srv,
    A,
    Aaaa,
}

impl DnsRecord {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecord::Srv => "SRV",
            DnsRecord::A => "A",
            DnsRecord::Aaaa => "AAAA",
        }
    }
}

/// `stack.remote_write[]`: one remote-write endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteWrite {
    /// The receiver's push URL, e.g. `http://mimir:9009/api/v1/push`.
    pub url: HttpUrl,
    /// A name for it in Prometheus's own metrics; unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            service_host: Host::default_of("host.docker.internal"),
            network: "monitoring".into(),
            scrape_interval: PromDuration::from_secs(15),
            evaluation_interval: PromDuration::from_secs(15),
            shipper: Shipper::default(),
            publish: Publish::default(),
            publish_grafana: Publish::default(),
            prometheus: Component::new("prom/prometheus:v2.53.2", 9090),
            loki: Component::new("grafana/loki:3.3.2", 3100),
            promtail: Component::new("grafana/promtail:3.3.2", 9080),
            alloy: Component::new("grafana/alloy:v1.5.1", 12345),
            grafana: Component::new("grafana/grafana:11.4.0", 3000),
            tempo: Component::new("grafana/tempo:2.10.8", 3200),
            otlp: OtlpPorts::default(),
            traces_retention: PromDuration::from_secs(14 * 86400),
            grafana_url: None,
            alertmanager: None,
            extra_targets: Vec::new(),
            discovery: Discovery::default(),
            remote_write: Vec::new(),
            datasources: DatasourceUids::default(),
        }
    }
}

/// `stack.otlp`: the ports of Tempo's OTLP receivers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpPorts {
    /// OTLP over HTTP (the service exports here), published on the host.
    pub http: i64,
    /// OTLP over gRPC, on the compose network only.
    pub grpc: i64,
}

impl Default for OtlpPorts {
    fn default() -> Self {
        OtlpPorts {
            http: 4318,
            grpc: 4317,
        }
    }
}

/// `kubernetes`: what `render` writes to `kubernetes/` (Deployment,
/// Service, ConfigMaps, and the Prometheus Operator's ServiceMonitor and
/// PrometheusRule).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Kubernetes {
    /// Namespace of the service's objects (Deployment, Service, its
    /// ConfigMap, ServiceMonitor, PrometheusRule).
    pub namespace: String,
    /// Namespace of the monitoring stack: the dashboard, datasource and
    /// Alloy ConfigMaps go there, where Grafana's sidecar and Alloy look.
    pub monitoring_namespace: String,
    /// The service's container image; default `<service.name>:<service.version>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// Pods of the Deployment (1 to 1000).
    pub replicas: i64,
    /// The container's resource requests and limits, e.g. `cpu: 100m`, `memory: 64Mi`.
    pub resources: KubernetesResources,
    /// Labels on the ServiceMonitor and PrometheusRule, which the Prometheus
    /// Operator selects them by (kube-prometheus-stack: `release: <its release name>`).
    pub selector_labels: std::collections::BTreeMap<String, String>,
    /// Prometheus as Grafana reaches it in the cluster (the datasource ConfigMap).
    pub prometheus_url: HttpUrl,
    /// Loki as Grafana and Alloy reach it in the cluster.
    pub loki_url: HttpUrl,
    /// Tempo's HTTP API as Grafana reaches it in the cluster (the
    /// `grafana/tempo` chart's Service, port 3200).
    pub tempo_url: HttpUrl,
    /// Tempo's OTLP gRPC receiver (`host:port`), where Alloy sends the
    /// spans it receives.
    pub tempo_otlp: HostPort,
    /// Alloy's OTLP/HTTP receiver as the service's pods reach it (the
    /// Deployment's `OTEL_EXPORTER_OTLP_ENDPOINT`); Alloy listens on its
    /// port, which the Alloy chart's Service must expose (`alloy.extraPorts`).
    pub otlp_url: HttpUrl,
    /// The container's environment: plain values, and keys of Secrets and
    /// ConfigMaps (where `auth` keys and tokens come from).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Whole Secrets and ConfigMaps as environment variables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFrom>,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Kubernetes {
            namespace: "default".into(),
            monitoring_namespace: "monitoring".into(),
            image: None,
            image_pull_policy: "IfNotPresent".into(),
            replicas: 2,
            resources: KubernetesResources::default(),
            selector_labels: [("release".to_string(), "kube-prometheus-stack".to_string())]
                .into_iter()
                .collect(),
            prometheus_url: HttpUrl::default_of("http://prometheus-operated.monitoring.svc:9090"),
            loki_url: HttpUrl::default_of("http://loki-gateway.monitoring.svc"),
            tempo_url: HttpUrl::default_of("http://tempo.monitoring.svc:3200"),
            tempo_otlp: HostPort::default_of("tempo.monitoring.svc:4317"),
            otlp_url: HttpUrl::default_of("http://alloy.monitoring.svc:4318"),
            env: Vec::new(),
            env_from: Vec::new(),
        }
    }
}

/// `kubernetes.resources`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Resources")]
pub struct KubernetesResources {
    pub requests: Quantities,
    pub limits: Quantities,
}

impl Default for KubernetesResources {
    fn default() -> Self {
        KubernetesResources {
            requests: Quantities {
                cpu: Some("100m".into()),
                memory: Some("64Mi".into()),
            },
            limits: Quantities {
                cpu: None,
                memory: Some("256Mi".into()),
            },
        }
    }
}

/// CPU and memory, as Kubernetes quantities (`250m`, `1`, `128Mi`, `1Gi`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// One container of the stack.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub image: String,
    pub port: i64,
}

impl Component {
    fn new(image: &str, port: i64) -> Self {
        Component {
            image: image.into(),
            port,
        }
    }
}

/// An extra Prometheus scrape job.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapeTarget {
    pub job: String,
    pub targets: Vec<HostPort>,
}

/// Pinned Grafana datasource uids.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DatasourceUids {
    pub prometheus: String,
    pub loki: String,
    pub json: String,
    pub tempo: String,
}

impl Default for DatasourceUids {
    fn default() -> Self {
        DatasourceUids {
            prometheus: "telltale-prometheus".into(),
            loki: "telltale-loki".into(),
            json: "telltale-json".into(),
            tempo: "telltale-tempo".into(),
        }
    }
}
