//! `auth:` and the secret references it (and `kubernetes.env`) name: who
//! may call the service, declared once and enforced by the server, shown in
//! the OpenAPI document and carried by reference into the rendered stack.
//!
//! No secret is ever written here: keys come from an environment variable
//! or a file ([`SecretRef`]), read by the server when it starts or reloads.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `auth`: the credentials the service accepts, and which endpoints need one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// The schemes, by name (each is an OpenAPI security scheme of that name).
    pub schemes: BTreeMap<String, Scheme>,
    /// What an endpoint without its own `auth` requires. Unset: nothing
    /// (every endpoint is open unless it says otherwise).
    pub default: Requirement,
    /// What `/docs` and `/openapi.json` require (default: nothing).
    pub docs: Requirement,
}

impl Auth {
    /// What endpoint `ep` requires: its own `auth`, else `auth.default`.
    pub fn requirement<'a>(&'a self, ep: &'a super::Endpoint) -> &'a Requirement {
        ep.auth.as_ref().unwrap_or(&self.default)
    }
}

/// How a credential is presented and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemeKind {
    /// An opaque key in a header (`header`, default `X-API-Key`).
    ApiKey,
    /// An opaque token in `Authorization: Bearer <token>` (a scrape token).
    Bearer,
    /// A signed JWT in `Authorization: Bearer <jwt>`.
    Jwt,
}

/// A JWT's signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256: `key` is the shared secret.
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256: `key` is the PEM public key.
    RS256,
    /// ECDSA P-256 with SHA-256: `key` is the PEM public key.
    ES256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }
}

/// `auth.schemes.<name>`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scheme {
    /// `api_key`, `bearer` or `jwt`.
    #[serde(rename = "type")]
    pub kind: SchemeKind,
    /// What the docs UI says of it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `api_key`: the header that carries the key (default `X-API-Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// `api_key` and `bearer`: where the accepted keys are. The text is
    /// `key:principal` pairs separated by commas or new lines; a key alone
    /// names the scheme as its principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<SecretRef>,
    /// `jwt`: the signature algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<JwtAlgorithm>,
    /// `jwt`: the HS256 secret, or the RS256/ES256 public key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretRef>,
    /// `jwt`: the `iss` a token must carry, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `jwt`: the `aud` a token must carry, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `jwt`: clock skew allowed on `exp` and `nbf`, in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway_seconds: Option<u64>,
}

impl Scheme {
    /// The header an `api_key` scheme reads.
    pub fn header_name(&self) -> &str {
        self.header.as_deref().unwrap_or("X-API-Key")
    }
}

/// Where a secret is: an environment variable or a file, never the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(try_from = "SecretRefFields", into = "SecretRefFields")]
#[schemars(with = "SecretRefFields")]
pub enum SecretRef {
    /// The environment variable of this name.
    Env(String),
    /// This file (relative to the manifest's directory), read whole.
    File(String),
}

/// The largest secret read (a key list, a PEM key, a header value).
pub const SECRET_LIMIT: u64 = 1 << 20;

impl SecretRef {
    /// Reads the secret, a file relative to `base_dir` (the manifest's
    /// directory; `None` for the embedded manifest): its text, and where it
    /// came from for messages (`$VAR` or the path; never the value).
    pub fn read(&self, base_dir: Option<&std::path::Path>) -> Result<(String, String), String> {
        match self {
            SecretRef::Env(name) => {
                let shown = format!("${name}");
                match std::env::var(name) {
                    Ok(v) if v.len() as u64 > SECRET_LIMIT => {
                        Err(format!("{shown} is over {SECRET_LIMIT} bytes"))
                    }
                    Ok(v) => Ok((v, shown)),
                    Err(std::env::VarError::NotPresent) => {
                        Err(format!("the environment variable {name} is not set"))
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        Err(format!("the environment variable {name} is not UTF-8"))
                    }
                }
            }
            SecretRef::File(path) => {
                let full = match base_dir {
                    Some(base) => base.join(path),
                    None => std::path::PathBuf::from(path),
                };
                let shown = full.display().to_string();
                let text = super::load::read_bounded(
                    &full,
                    SECRET_LIMIT,
                    "secret file",
                    "the secret limit",
                )?;
                Ok((text, shown))
            }
        }
    }
}

/// `{env: NAME}` or `{file: path}`, exactly one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRefFields {
    /// The environment variable that holds the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The file that holds the secret, relative to the manifest's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl TryFrom<SecretRefFields> for SecretRef {
    type Error = String;
    fn try_from(f: SecretRefFields) -> Result<SecretRef, String> {
        match (f.env, f.file) {
            (Some(e), None) => Ok(SecretRef::Env(e)),
            (None, Some(p)) => Ok(SecretRef::File(p)),
            _ => Err("give exactly one of `env` (a variable's name) or `file` (a path)".into()),
        }
    }
}

impl From<SecretRef> for SecretRefFields {
    fn from(r: SecretRef) -> SecretRefFields {
        match r {
            SecretRef::Env(e) => SecretRefFields {
                env: Some(e),
                file: None,
            },
            SecretRef::File(p) => SecretRefFields {
                env: None,
                file: Some(p),
            },
        }
    }
}

/// What an endpoint (or `/docs`) requires of its caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Requirement {
    /// The schemes it accepts, any one of them (`[]`: open to anyone).
    pub schemes: Vec<String>,
    /// `jwt`: scopes the token must all carry (`scope` or `scp` claim).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `jwt`: claims the token must carry with exactly these string values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

impl Requirement {
    /// Whether anyone may call.
    pub fn is_open(&self) -> bool {
        self.schemes.is_empty()
    }
}

/// `kubernetes.env[]`: one environment variable of the container.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    /// A plain value (never a secret: use `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A key of a Secret (`secretKeyRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<KeyRef>,
    /// A key of a ConfigMap (`configMapKeyRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<KeyRef>,
}

/// A key of a Secret or ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
}

/// `kubernetes.env_from[]`: every key of a Secret or ConfigMap as a variable.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
}

/// Whether `s` is a portable environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}
