//! Typed values of the manifest, each parsed once, when the manifest is
//! read: a value that does not parse is a located error of the load (with
//! every other error of the same run), and what comes after the load
//! (validation, render, server, chaos, verify) holds the parsed value and
//! never reads the text again.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use super::addresses::{DnsName, Host, HostPort, HttpUrl};

/// A Prometheus duration (`15s`, `1m30s`, `500ms`, `30d`): the text as
/// written, and its value.
///
/// The syntax is Prometheus's config syntax (`model.ParseDuration`): units
/// `y w d h m s ms`, each at most once and largest first, every number
/// with its unit. A bare number (`15`, `1.5`) is refused. The value is
/// computed by `promql_parser::util::parse_duration`, the parser the PromQL
/// lint uses too; `0s` is a duration of zero (fields that need a positive
/// one say so in validation).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PromDuration {
    text: String,
    value: Duration,
}

/// What a duration looks like, for error messages.
const EXAMPLES: &str = "a Prometheus duration such as 30s, 5m, 1h30m or 500ms";

impl PromDuration {
    /// Parses `text` as a Prometheus duration; the error says why not.
    ///
    /// `promql_parser::util::parse_duration` holds the grammar; around it,
    /// what Prometheus's config reads differently: a bare number (`15`,
    /// `1.5`), which promql_parser reads as seconds, is refused; a number
    /// too large for it (which it drops without a word) is refused; and a
    /// zero (`0s`), which it refuses, is a duration of zero.
    pub fn parse(text: &str) -> Result<PromDuration, String> {
        let bad = |why: &str| format!("bad duration {text:?}: {why}");
        if text.is_empty() {
            return Err(bad(&format!("empty; expected {EXAMPLES}")));
        }
        if text.parse::<f64>().is_ok() {
            return Err(bad(&format!("a number needs a unit; expected {EXAMPLES}")));
        }
        let numbers = text.split(|c: char| !c.is_ascii_digit());
        if let Some(n) = numbers
            .filter(|n| !n.is_empty())
            .find(|n| n.parse::<u32>().is_err())
        {
            return Err(bad(&format!("{n} is too large")));
        }
        let zero = !text.bytes().any(|b| (b'1'..=b'9').contains(&b));
        // A zero's syntax is checked as the same text with ones.
        let checked = if zero {
            text.replace('0', "1")
        } else {
            text.to_string()
        };
        let value = promql_parser::util::parse_duration(&checked).map_err(|_| {
            // Only on the error path: every number has a unit, out of order?
            let units = regex::Regex::new("^([0-9]+(ms|[ywdhms]))+$").expect("a valid regex");
            if units.is_match(text) {
                bad("units must be written largest first, each once")
            } else {
                bad(&format!("expected {EXAMPLES}"))
            }
        })?;
        let value = if zero { Duration::ZERO } else { value };
        if value.as_millis() > i64::MAX as u128 {
            return Err(bad("out of range"));
        }
        Ok(PromDuration {
            text: text.to_string(),
            value,
        })
    }

    /// A whole number of seconds, written the Prometheus way (`300` → `5m`).
    pub fn from_secs(secs: u64) -> PromDuration {
        let value = Duration::from_secs(secs);
        PromDuration {
            text: promql_parser::util::display_duration(&value),
            value,
        }
    }

    /// A whole number of milliseconds, written the Prometheus way (`50ms`).
    pub fn from_millis(ms: u64) -> PromDuration {
        let value = Duration::from_millis(ms);
        PromDuration {
            text: promql_parser::util::display_duration(&value),
            value,
        }
    }

    /// The text as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed value.
    pub fn get(&self) -> Duration {
        self.value
    }

    /// Whether it is a duration of zero (`0s`).
    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }
}

impl std::fmt::Display for PromDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for PromDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PromDuration({:?})", self.text)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PromDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXAMPLES)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PromDuration, E> {
                PromDuration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PromDuration, E> {
                Err(E::custom(format!(
                    "bad duration {v}: a number needs a unit; expected {EXAMPLES}"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PromDuration, E> {
                Err(E::custom(format!(
                    "bad duration {v}: a number needs a unit; expected {EXAMPLES}"
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<PromDuration, E> {
                Err(E::custom(format!(
                    "bad duration {v}: a number needs a unit; expected {EXAMPLES}"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// In the schema, a string matching Prometheus's duration syntax.
impl JsonSchema for PromDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PromDuration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Prometheus duration: units y, w, d, h, m, s, ms, largest first (`15s`, `1m30s`, `500ms`).",
            "type": "string",
            "minLength": 2,
            "pattern": "^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
        })
    }
}

/// An HTTP method a route may serve: the one table of them, for the
/// manifest's `endpoints[].method`, the handler kinds' methods, the
/// metrics' `method` label (any other method counts as `OTHER`) and the
/// logging of a request refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Options,
}

impl HttpMethod {
    /// Every method, in the order of the `method` label's values.
    pub const ALL: [HttpMethod; 7] = [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Delete,
        HttpMethod::Patch,
        HttpMethod::Head,
        HttpMethod::Options,
    ];

    /// The method as HTTP writes it (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
        }
    }

    /// The method a request token names, exactly (HTTP methods are case-sensitive).
    pub fn from_token(token: &[u8]) -> Option<HttpMethod> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().as_bytes() == token)
    }

    /// The `http` crate's method (poem's and reqwest's).
    pub fn to_http(self) -> poem::http::Method {
        use poem::http::Method;
        match self {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Head => Method::HEAD,
            HttpMethod::Options => Method::OPTIONS,
        }
    }

    /// Its place in [`HttpMethod::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Every method, as a list for messages.
    fn list() -> String {
        Self::ALL
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses `endpoints[].method`, in any case (`get`, `GET`).
    pub fn parse(name: &str) -> Result<HttpMethod, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown HTTP method {name:?} (known: {})", Self::list()))
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for HttpMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HttpMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        HttpMethod::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// In the schema, a method in any case (`GET`, `get`).
impl JsonSchema for HttpMethod {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HttpMethod".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let any_case: Vec<String> = HttpMethod::ALL
            .iter()
            .map(|m| {
                m.as_str()
                    .chars()
                    .map(|c| format!("[{c}{}]", c.to_ascii_lowercase()))
                    .collect()
            })
            .collect();
        schemars::json_schema!({
            "description": format!("An HTTP method, in any case: {}.", HttpMethod::list()),
            "type": "string",
            "pattern": format!("^({})$", any_case.join("|"))
        })
    }
}

/// `logging.level`: the least severe level written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];

    /// The level as the manifest writes it (`info`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// Parses a level as the manifest writes it (lower case).
    pub fn parse(name: &str) -> Result<LogLevel, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|l| l.as_str()).collect();
                format!("unknown level {name:?} (known: {})", known.join(", "))
            })
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LogLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        LogLevel::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// In the schema, one of the level names.
impl JsonSchema for LogLevel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LogLevel".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = LogLevel::ALL.iter().map(|l| l.as_str()).collect();
        schemars::json_schema!({
            "description": "A log level: trace, debug, info, warn or error.",
            "type": "string",
            "enum": names
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<u64, String> {
        PromDuration::parse(s).map(|d| d.get().as_secs())
    }

    #[test]
    fn durations_parse_as_prometheus_reads_them() {
        assert_eq!(secs("15s"), Ok(15));
        assert_eq!(secs("1m30s"), Ok(90));
        assert_eq!(secs("30d"), Ok(30 * 86400));
        assert_eq!(secs("1y2w"), Ok(365 * 86400 + 14 * 86400));
        assert_eq!(
            PromDuration::parse("500ms").unwrap().get(),
            Duration::from_millis(500)
        );
        assert_eq!(
            PromDuration::parse("1s500ms").unwrap().get(),
            Duration::from_millis(1500)
        );
        assert!(PromDuration::parse("0s").unwrap().is_zero());
        assert!(PromDuration::parse("0h0m").unwrap().is_zero());
        assert_eq!(PromDuration::parse("1h30m").unwrap().as_str(), "1h30m");
        assert_eq!(secs("1w1d1h1m1s"), Ok(7 * 86400 + 86400 + 3600 + 61));
        assert_eq!(secs("4294967295s"), Ok(4294967295));
    }

    #[test]
    fn what_prometheus_refuses_is_refused() {
        for bad in [
            "",
            "15",
            "0",
            "1.5",
            "-1s",
            "1.5m",
            "nan",
            "inf",
            "5 s",
            " 5s",
            "5S",
            "soon",
            "m",
            "ms",
            "0x",
            "1e3s",
            "1m1h",
            "1s1s",
            "5parsecs",
            "99999999999s",
            "{{x}}",
        ] {
            let e = PromDuration::parse(bad).unwrap_err();
            assert!(e.starts_with("bad duration"), "{bad:?}: {e}");
        }
        // The message says what is wrong.
        let e = PromDuration::parse("1m1h").unwrap_err();
        assert!(e.contains("largest first, each once"), "{e}");
        let e = PromDuration::parse("1.5").unwrap_err();
        assert!(e.contains("needs a unit"), "{e}");
        let e = PromDuration::parse("1h4294967296s").unwrap_err();
        assert!(e.contains("4294967296 is too large"), "{e}");
    }

    #[test]
    fn from_secs_writes_the_shortest_text() {
        assert_eq!(PromDuration::from_secs(300).as_str(), "5m");
        assert_eq!(PromDuration::from_secs(30 * 86400).as_str(), "30d");
        assert_eq!(PromDuration::from_secs(15).as_str(), "15s");
    }

    #[test]
    fn it_reads_and_writes_the_text() {
        let d: PromDuration = serde_yaml::from_str("1m30s").unwrap();
        assert_eq!(d.get(), Duration::from_secs(90));
        assert_eq!(serde_yaml::to_string(&d).unwrap().trim(), "1m30s");
        let e = serde_yaml::from_str::<PromDuration>("15").unwrap_err();
        assert!(e.to_string().contains("needs a unit"), "{e}");
    }
    #[test]
    fn methods_are_read_in_any_case_and_written_in_upper_case() {
        assert_eq!(HttpMethod::parse("get"), Ok(HttpMethod::Get));
        assert_eq!(HttpMethod::parse("Delete"), Ok(HttpMethod::Delete));
        let m: HttpMethod = serde_yaml::from_str("options").unwrap();
        assert_eq!(serde_yaml::to_string(&m).unwrap().trim(), "OPTIONS");
        for bad in ["FETCH", "CONNECT", "trace", "", "GET ", "{{x}}"] {
            let e = HttpMethod::parse(bad).unwrap_err();
            assert!(e.starts_with("unknown HTTP method"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn request_tokens_are_case_sensitive() {
        assert_eq!(HttpMethod::from_token(b"PATCH"), Some(HttpMethod::Patch));
        assert_eq!(HttpMethod::from_token(b"get"), None);
        assert_eq!(HttpMethod::from_token(b"TRACE"), None);
        for (i, m) in HttpMethod::ALL.into_iter().enumerate() {
            assert_eq!(m.index(), i);
        }
    }
    #[test]
    fn log_levels_are_read_in_lower_case() {
        assert_eq!(LogLevel::parse("warn"), Ok(LogLevel::Warn));
        let e = LogLevel::parse("WARN").unwrap_err();
        assert!(
            e.starts_with("unknown level \"WARN\" (known: trace,"),
            "{e}"
        );
        assert_eq!(
            serde_yaml::to_string(&LogLevel::Debug).unwrap().trim(),
            "debug"
        );
    }
}
