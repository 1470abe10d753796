//! Typed addresses of the manifest: hosts, `host:port` pairs, DNS names
//! and HTTP URLs, each a string newtype checked once when the manifest is
//! read (see [`super::values`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Defines a string newtype that is checked once, when the manifest is
/// read: `Deserialize` runs `$check`, `Serialize` writes the text back.
macro_rules! checked_text {
    ($(#[$doc:meta])* $name:ident, $check:path, $schema:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `text`; the error says what is wrong with it.
            pub fn parse(text: &str) -> Result<$name, String> {
                $check(text).map(|()| $name(text.to_string()))
            }
            /// The text as written in the manifest.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// A default of the manifest's, known to pass the check
            /// (`defaults_are_valid` tests each).
            #[allow(dead_code)]
            pub(super) fn default_of(text: &str) -> $name {
                $name(text.to_string())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $schema
            }
        }
    };
}

/// Whether `label` is an RFC 1123 host name label: 1 to 63 letters, digits
/// and `-`, a letter or digit at both ends (with `underscore`, a leading
/// `_` as SRV names have, `_http._tcp`).
fn is_dns_label(label: &str, underscore: bool) -> bool {
    let b = label
        .strip_prefix('_')
        .filter(|_| underscore)
        .unwrap_or(label)
        .as_bytes();
    (1..=63).contains(&label.len())
        && !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// Whether `name` is a DNS name of RFC 1123 labels (at most 253 characters).
fn is_dns_name(name: &str, underscore: bool) -> bool {
    name.len() <= 253 && name.split('.').all(|l| is_dns_label(l, underscore))
}

/// `text` quoted for a message, cut to 80 characters.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// A host: a DNS name, an IPv4 address or a bracketed IPv6 address (`[::1]`).
fn check_host(text: &str) -> Result<(), String> {
    let ok = match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            text.parse::<std::net::Ipv4Addr>().is_ok()
                || (is_dns_name(text, false)
                    && !text
                        .rsplit('.')
                        .next()
                        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a host: a DNS name (letters, digits, '-' and '.'), an IPv4 address or a bracketed IPv6 address such as [::1]",
            shown(text)
        ))
    }
}

/// `host:port`, the host as [`check_host`] takes it, the port 1 to 65535.
fn check_host_port(text: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{} must be host:port (a DNS name, an IPv4 address or a bracketed IPv6 address, and a port in 1-65535)",
            shown(text)
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = !port.starts_with('+') && port.parse::<u16>().is_ok_and(|p| p > 0);
    if !port_ok || check_host(host).is_err() {
        return Err(bad());
    }
    Ok(())
}

/// A DNS name to query: RFC 1123 labels, `_` allowed at the start of one.
fn check_dns_name(text: &str) -> Result<(), String> {
    if is_dns_name(text, true) {
        Ok(())
    } else {
        Err(format!(
            "{} is not a DNS name (labels of letters, digits and '-', joined by '.', such as _http._tcp.api.example.internal)",
            shown(text)
        ))
    }
}

/// Characters that are valid in a URL's text but that telltale never
/// writes into a rendered file: they would be read as YAML, a template or
/// an annotation's markup.
const URL_UNSAFE: &[char] = &['"', '\'', '`', '{', '}', '<', '>', '\\', '|', '^'];

/// An absolute `http://` or `https://` URL with a host.
fn check_http_url(text: &str) -> Result<(), String> {
    let bad = |why: &str| format!("{} must be an http:// or https:// URL: {why}", shown(text));
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it has a space or a control character"));
    }
    if let Some(c) = text.chars().find(|c| URL_UNSAFE.contains(c)) {
        return Err(bad(&format!("{c:?} is not allowed")));
    }
    let url = reqwest::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&format!("the scheme is {:?}", url.scheme())));
    }
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(bad("it has no host")),
    }
}

checked_text!(
    /// A host others reach a service at (`host.docker.internal`,
    /// `10.0.0.5`, `[fd00::1]`), checked once when the manifest is read.
    Host,
    check_host,
    schemars::json_schema!({
        "description": "A DNS name, an IPv4 address or a bracketed IPv6 address such as [::1].",
        "type": "string",
        "pattern": "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]+\\])$"
    })
);

checked_text!(
    /// `host:port` (`api:8001`, `10.0.0.5:9093`, `[fd00::1]:8001`), checked
    /// once when the manifest is read.
    HostPort,
    check_host_port,
    schemars::json_schema!({
        "description": "host:port: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port in 1-65535.",
        "type": "string",
        "pattern": "^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$"
    })
);

checked_text!(
    /// A DNS name to query (`_http._tcp.api.example.internal`), checked
    /// once when the manifest is read.
    DnsName,
    check_dns_name,
    schemars::json_schema!({
        "description": "A DNS name: labels of letters, digits and '-' (an SRV label may start with '_'), joined by '.'.",
        "type": "string",
        "pattern": "^_?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\._?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
    })
);

checked_text!(
    /// An `http://` or `https://` URL, parsed once (by `reqwest::Url`)
    /// when the manifest is read; kept as written.
    HttpUrl,
    check_http_url,
    schemars::json_schema!({
        "description": "An http:// or https:// URL.",
        "type": "string",
        "format": "uri",
        "pattern": "^https?://[^\\s\"'`{}<>\\\\|^]+$"
    })
);

impl HttpUrl {
    /// The URL parsed (it parsed when the manifest was read).
    pub fn url(&self) -> Option<reqwest::Url> {
        reqwest::Url::parse(&self.0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let k = crate::manifest::Kubernetes::default();
        let s = crate::manifest::Stack::default();
        for u in [&k.prometheus_url, &k.loki_url] {
            assert!(HttpUrl::parse(u.as_str()).is_ok(), "{u}");
        }
        assert!(Host::parse(s.service_host.as_str()).is_ok());
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        for good in [
            "host.docker.internal",
            "localhost",
            "10.0.0.5",
            "[::1]",
            "[fd00::1]",
            "a-b.c",
        ] {
            assert!(Host::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "{{x}}",
            "a b",
            "a\nb",
            "\"x\"",
            "-a",
            "a-",
            "a..b",
            "::1",
            "[x]",
            "1.2.3.999",
            "x: y",
            "a_b",
            "http://x",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["api:8001", "10.0.0.5:9093", "[fd00::1]:8001"] {
            assert!(HostPort::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "api",
            "api:0",
            "api:65536",
            "api:+80",
            ":80",
            "{{x}}:80",
            "a b:80",
            "::1:80",
        ] {
            let e = HostPort::parse(bad).unwrap_err();
            assert!(e.contains("must be host:port"), "{bad:?}: {e}");
        }
        assert!(DnsName::parse("_http._tcp.api.example.internal").is_ok());
        assert!(DnsName::parse("api:80").is_err());
    }

    #[test]
    fn urls_are_http_and_kept_as_written() {
        let u: HttpUrl = serde_yaml::from_str("http://loki-gateway.monitoring.svc").unwrap();
        assert_eq!(u.as_str(), "http://loki-gateway.monitoring.svc");
        assert_eq!(
            u.url().unwrap().host_str(),
            Some("loki-gateway.monitoring.svc")
        );
        for bad in [
            "ftp://x",
            "http://",
            "x",
            "http://a b",
            "http://x/{{y}}",
            "http://x/\"",
            "https://x\n",
            "mailto:a@b",
        ] {
            let e = HttpUrl::parse(bad).unwrap_err();
            assert!(
                e.contains("must be an http:// or https:// URL"),
                "{bad:?}: {e}"
            );
        }
    }
}
