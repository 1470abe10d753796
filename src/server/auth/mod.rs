//! Authentication at run time: the `auth:` schemes with their keys loaded
//! (at start and at each reload, from the environment or files, never from
//! the manifest), and the [`Guard`] a protected route runs before its
//! handler.
//!
//! ```text
//! request ──► Observe (id, metrics, request line)
//!               └─► router ──► Guard::check ──► 401 / 403 (JSON, counted)
//!                                   └─ Caller ──► middleware ──► handler
//! ```
//!
//! API and bearer keys are kept only as keyed digests (SipHash under a key
//! drawn at random per load) and a presented key is looked up by its own
//! digest: the time a check takes depends on that digest alone, which no
//! caller can predict or steer, so it says nothing about any stored key
//! (the blinding of "compare MACs under a random key"); a JWT is checked by `jsonwebtoken` (signature, `exp`, `nbf`, `iss`,
//! `aud`). A refusal logs a bounded reason (`missing`, `malformed`,
//! `invalid`, `expired`, `forbidden`), never the credential, and at most
//! [`WARNINGS_PER_SECOND`] such lines a second.

use super::error::json_error;
use crate::manifest::auth::{JwtAlgorithm, Requirement, Scheme, SchemeKind, SecretRef};
use crate::model::Model;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use poem::Response;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
mod keys;
use keys::Keys;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The shortest key accepted: shorter ones are guessable.
pub const MIN_KEY_LEN: usize = 16;
/// Refusal warnings logged per second at most; the rest are counted and
/// reported with the next one logged.
pub const WARNINGS_PER_SECOND: u64 = 10;

pub use crate::logging::request::{Caller, Name};

/// Why a request was refused: a closed set, so it may be logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// No credential for any accepted scheme.
    Missing,
    /// A credential that is not of the scheme's form (`Bearer <token>`, a JWT).
    Malformed,
    /// A wrong key, or a JWT with a bad signature, issuer or audience.
    Invalid,
    /// A JWT past its `exp` (or before its `nbf`).
    Expired,
    /// A valid caller without a required scope or claim.
    Forbidden,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::Invalid => "invalid",
            Reason::Expired => "expired",
            Reason::Forbidden => "forbidden",
        }
    }
}

enum Check {
    /// `shown`: the header's name as the manifest spells it.
    ApiKey {
        header: HeaderName,
        shown: String,
        keys: Keys,
    },
    Bearer {
        keys: Keys,
    },
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
    },
}

/// A scheme with its keys loaded.
struct LoadedScheme {
    name: Name,
    check: Check,
}

/// Every declared scheme, loaded: built by [`Schemes::load`] for each
/// served manifest.
#[derive(Default)]
pub struct Schemes {
    by_name: HashMap<String, Arc<LoadedScheme>>,
    realm: String,
}

/// Reads a secret (`{env: NAME}` or `{file: path}`) with a bound; the error
/// names the reference, never the value.
pub fn read_secret(r: &SecretRef, model: &Model) -> Result<(String, String), String> {
    r.read(model.source.base_dir.as_deref())
}

impl Schemes {
    /// Loads every scheme of `model`: its keys from the environment or files.
    pub fn load(model: &Model) -> Result<Schemes, String> {
        let mut by_name = HashMap::new();
        for (name, s) in &model.manifest.auth.schemes {
            let check =
                load_one(name, s, model).map_err(|e| format!("auth.schemes.{name}: {e}"))?;
            by_name.insert(
                name.clone(),
                Arc::new(LoadedScheme {
                    name: Name::new(name),
                    check,
                }),
            );
        }
        Ok(Schemes {
            by_name,
            realm: model.manifest.service.name.clone(),
        })
    }

    /// The guard of `req`, `None` if it is open.
    pub fn guard(&self, req: &Requirement) -> Result<Option<Arc<Guard>>, String> {
        if req.is_open() {
            return Ok(None);
        }
        let mut schemes = Vec::new();
        for n in &req.schemes {
            schemes.push(
                self.by_name
                    .get(n)
                    .cloned()
                    .ok_or_else(|| format!("auth scheme {n:?} is not declared"))?,
            );
        }
        let mut challenges = Vec::new();
        let mut bearer = false;
        for s in &schemes {
            match &s.check {
                Check::ApiKey { shown, .. } => challenges.push(format!(
                    "ApiKey realm=\"{}\", header=\"{}\"",
                    quoted(&self.realm),
                    shown
                )),
                Check::Bearer { .. } | Check::Jwt { .. } if !bearer => {
                    bearer = true;
                    challenges.push(format!("Bearer realm=\"{}\"", quoted(&self.realm)));
                }
                _ => {}
            }
        }
        let value = |extra: &str| {
            let mut v = challenges.clone();
            if bearer && !extra.is_empty() {
                if let Some(b) = v.iter_mut().find(|c| c.starts_with("Bearer")) {
                    b.push_str(extra);
                }
            }
            HeaderValue::from_str(&v.join(", ")).map_err(|e| e.to_string())
        };
        let forbidden = format!(
            "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
            quoted(&self.realm),
            quoted(&req.scopes.join(" "))
        );
        let accepted: Vec<&str> = schemes.iter().map(|s| s.name.as_str()).collect();
        Ok(Some(Arc::new(Guard {
            reads_bearer: bearer,
            accepted: accepted.join(",").into(),
            schemes,
            scopes: req.scopes.clone(),
            claims: req.claims.clone().into_iter().collect(),
            challenge: value("")?,
            challenge_invalid: value(", error=\"invalid_token\"")?,
            challenge_forbidden: HeaderValue::from_str(&forbidden).map_err(|e| e.to_string())?,
        })))
    }
}

/// `s` inside a quoted-string: `"` and `\` escaped, controls dropped.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

fn load_one(name: &str, s: &Scheme, model: &Model) -> Result<Check, String> {
    let need = |what: &str| format!("a {what} is required (`validate` checks this)");
    match s.kind {
        SchemeKind::ApiKey | SchemeKind::Bearer => {
            let r = s.keys.as_ref().ok_or_else(|| need("`keys`"))?;
            let (text, shown) = read_secret(r, model)?;
            let keys = Keys::parse(&text, name, &shown)?;
            Ok(if s.kind == SchemeKind::ApiKey {
                let header = HeaderName::from_bytes(s.header_name().as_bytes())
                    .map_err(|e| format!("header: {e}"))?;
                Check::ApiKey {
                    header,
                    shown: s.header_name().to_string(),
                    keys,
                }
            } else {
                Check::Bearer { keys }
            })
        }
        SchemeKind::Jwt => {
            let alg = s.algorithm.ok_or_else(|| need("`algorithm`"))?;
            let r = s.key.as_ref().ok_or_else(|| need("`key`"))?;
            let (text, shown) = read_secret(r, model)?;
            let bad = |e: jsonwebtoken::errors::Error| format!("the key in {shown}: {e}");
            let (key, algorithm) = match alg {
                JwtAlgorithm::HS256 => {
                    let secret = text.trim_end_matches(['\n', '\r']);
                    if secret.len() < 32 {
                        return Err(format!(
                            "the HS256 secret in {shown} is shorter than 32 bytes"
                        ));
                    }
                    (
                        DecodingKey::from_secret(secret.as_bytes()).map_err(bad)?,
                        Algorithm::HS256,
                    )
                }
                JwtAlgorithm::RS256 => (
                    DecodingKey::from_rsa_pem(text.as_bytes()).map_err(bad)?,
                    Algorithm::RS256,
                ),
                JwtAlgorithm::ES256 => (
                    DecodingKey::from_ec_pem(text.as_bytes()).map_err(bad)?,
                    Algorithm::ES256,
                ),
            };
            let mut validation = Validation::new(algorithm);
            validation.leeway = s.leeway_seconds.unwrap_or(30);
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp", "sub"]);
            match &s.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            if let Some(iss) = &s.issuer {
                validation.set_issuer(&[iss]);
            }
            Ok(Check::Jwt {
                key,
                validation: Box::new(validation),
            })
        }
    }
}

/// What one route requires, ready to check a request.
pub struct Guard {
    schemes: Vec<Arc<LoadedScheme>>,
    /// Whether a bearer or JWT scheme is accepted (`Authorization` is read).
    reads_bearer: bool,
    /// The schemes' names, for the refusal's log line.
    accepted: Arc<str>,
    scopes: Vec<String>,
    claims: Vec<(String, String)>,
    challenge: HeaderValue,
    challenge_invalid: HeaderValue,
    challenge_forbidden: HeaderValue,
}

/// A refused request: why, and the response that says so.
pub struct Denied {
    pub reason: Reason,
    pub response: Response,
    accepted: Arc<str>,
}

impl Denied {
    /// Logs the refusal (call it inside the request, so that the line
    /// carries the request's fields), at most [`WARNINGS_PER_SECOND`] a
    /// second.
    pub fn log(&self) {
        warn(self.reason, &self.accepted);
    }
}

impl Guard {
    /// The caller of a request with these headers, or why it is refused.
    pub fn check(&self, headers: &HeaderMap) -> Result<Box<Caller>, Box<Denied>> {
        let mut worst = Reason::Missing;
        // An API-key-only route never looks at `Authorization`.
        let bearer = if self.reads_bearer {
            headers.get(header::AUTHORIZATION).map(bearer_token)
        } else {
            None
        };
        for s in &self.schemes {
            let outcome = match &s.check {
                Check::ApiKey { header, keys, .. } => match headers.get(header) {
                    None => Err(Reason::Missing),
                    Some(v) => keys
                        .find(v.as_bytes())
                        .ok_or(Reason::Invalid)
                        .map(|p| key_caller(s, p)),
                },
                Check::Bearer { keys } => match &bearer {
                    None => Err(Reason::Missing),
                    Some(Err(r)) => Err(*r),
                    Some(Ok(t)) => keys
                        .find(t)
                        .ok_or(Reason::Invalid)
                        .map(|p| key_caller(s, p)),
                },
                Check::Jwt { key, validation } => match &bearer {
                    None => Err(Reason::Missing),
                    Some(Err(r)) => Err(*r),
                    Some(Ok(t)) => std::str::from_utf8(t)
                        .map_err(|_| Reason::Malformed)
                        .and_then(|t| jwt_caller(s, t, key, validation)),
                },
            };
            match outcome {
                Ok(caller) => return self.authorize(caller),
                // The most telling reason wins: a malformed or wrong
                // credential says more than one that is missing.
                Err(r) => worst = worst.max(r),
            }
        }
        Err(self.deny(worst))
    }

    /// `caller` if it has every required scope and claim.
    fn authorize(&self, caller: Caller) -> Result<Box<Caller>, Box<Denied>> {
        let scoped = self.scopes.iter().all(|s| caller.scopes().contains(s));
        let claimed = self
            .claims
            .iter()
            .all(|(k, v)| caller.claim(k).and_then(Json::as_str) == Some(v.as_str()));
        if scoped && claimed {
            // Boxed once here: it moves on as a pointer (into the request's
            // context, `request::set_caller`).
            Ok(Box::new(caller))
        } else {
            Err(self.deny(Reason::Forbidden))
        }
    }

    fn deny(&self, reason: Reason) -> Box<Denied> {
        let (status, message, challenge) = match reason {
            Reason::Missing => (
                StatusCode::UNAUTHORIZED,
                "this endpoint needs a credential (see WWW-Authenticate)",
                &self.challenge,
            ),
            Reason::Malformed => (
                StatusCode::UNAUTHORIZED,
                "the credential is malformed",
                &self.challenge_invalid,
            ),
            Reason::Invalid => (
                StatusCode::UNAUTHORIZED,
                "the credential is not valid",
                &self.challenge_invalid,
            ),
            Reason::Expired => (
                StatusCode::UNAUTHORIZED,
                "the credential has expired",
                &self.challenge_invalid,
            ),
            Reason::Forbidden => (
                StatusCode::FORBIDDEN,
                "the caller lacks a required scope or claim",
                &self.challenge_forbidden,
            ),
        };
        let mut response = json_error(status, message);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge.clone());
        Box::new(Denied {
            reason,
            response,
            accepted: self.accepted.clone(),
        })
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(v: &HeaderValue) -> Result<&[u8], Reason> {
    // hyper admits no control byte but a tab into a value, so ASCII is
    // `to_str`'s visible ASCII here, checked a word at a time.
    let bytes = v.as_bytes();
    if !bytes.is_ascii() {
        return Err(Reason::Malformed);
    }
    let (scheme, token) = bytes.split_at_checked(7).ok_or(Reason::Malformed)?;
    let token = token.trim_ascii();
    if !scheme.eq_ignore_ascii_case(b"bearer ") || token.is_empty() {
        return Err(Reason::Malformed);
    }
    Ok(token)
}

fn key_caller(s: &LoadedScheme, principal: Name) -> Caller {
    Caller::new(s.name.clone(), principal, Vec::new(), None)
}

fn jwt_caller(
    s: &LoadedScheme,
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Caller, Reason> {
    if token.split('.').count() != 3 {
        return Err(Reason::Malformed);
    }
    let data = jsonwebtoken::decode::<Map<String, Json>>(token, key, validation).map_err(|e| {
        match e.kind() {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => Reason::Expired,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_)
            | ErrorKind::InvalidClaimFormat(_) => Reason::Malformed,
            _ => Reason::Invalid,
        }
    })?;
    let claims = data.claims;
    let principal = match claims.get("sub").and_then(Json::as_str) {
        Some(s) if !s.is_empty() => Name::new(s),
        _ => return Err(Reason::Invalid),
    };
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Json::String(s)), _) => s.split_whitespace().map(String::from).collect(),
        (_, Some(Json::Array(a))) => a
            .iter()
            .filter_map(Json::as_str)
            .map(String::from)
            .collect(),
        (_, Some(Json::String(s))) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    };
    Ok(Caller::new(
        s.name.clone(),
        principal,
        scopes,
        Some(Arc::new(claims)),
    ))
}

/// The second the current window started, and what it logged and held back.
static WINDOW: AtomicU64 = AtomicU64::new(0);
static LOGGED: AtomicU64 = AtomicU64::new(0);
static HELD_BACK: AtomicU64 = AtomicU64::new(0);

/// Logs a refusal, at most [`WARNINGS_PER_SECOND`] a second; the number
/// held back since the last one logged goes with the next.
fn warn(reason: Reason, accepted: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if WINDOW.swap(now, Ordering::Relaxed) != now {
        LOGGED.store(0, Ordering::Relaxed);
    }
    if LOGGED.fetch_add(1, Ordering::Relaxed) >= WARNINGS_PER_SECOND {
        HELD_BACK.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let held_back = HELD_BACK.swap(0, Ordering::Relaxed);
    tracing::warn!(
        target: "telltale::auth",
        reason = reason.as_str(),
        schemes = accepted,
        held_back,
        "request refused: credential {}",
        reason.as_str()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_need_the_bearer_scheme() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer_token(&v("Bearer abc")), Ok(&b"abc"[..]));
        assert_eq!(bearer_token(&v("bearer  abc ")), Ok(&b"abc"[..]));
        assert_eq!(bearer_token(&v("Basic abc")), Err(Reason::Malformed));
        assert_eq!(bearer_token(&v("Bearer ")), Err(Reason::Malformed));
        assert_eq!(bearer_token(&v("Bearer")), Err(Reason::Malformed));
        assert_eq!(bearer_token(&v("Bearer\tabc")), Err(Reason::Malformed));
        let obs_text = HeaderValue::from_bytes(b"Bearer ab\xffc").unwrap();
        assert_eq!(bearer_token(&obs_text), Err(Reason::Malformed));
        assert_eq!(bearer_token(&v("abc")), Err(Reason::Malformed));
    }

    #[test]
    fn quoted_strings_escape_quotes_and_drop_controls() {
        assert_eq!(quoted("a\"b\\c\nd"), "a\\\"b\\\\cd");
    }
}

#[cfg(test)]
mod cost {
    use super::*;

    /// `cargo test --release --lib -- --ignored guard_check_cost --nocapture`:
    /// what one check costs, alone (bench/auth measures it in the server).
    #[test]
    #[ignore]
    fn guard_check_cost() {
        let keys = Keys::parse("alice-key-000000000001:alice", "key", "$K").unwrap();
        let loaded = Arc::new(LoadedScheme {
            name: Name::new("key"),
            check: Check::ApiKey {
                header: HeaderName::from_static("x-api-key"),
                shown: "X-API-Key".into(),
                keys,
            },
        });
        let schemes = Schemes {
            by_name: [("key".to_string(), loaded)].into_iter().collect(),
            realm: "svc".into(),
        };
        let req = Requirement {
            schemes: vec!["key".into()],
            ..Requirement::default()
        };
        let guard = schemes.guard(&req).unwrap().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-api-key",
            HeaderValue::from_static("alice-key-000000000001"),
        );
        headers.insert("accept", HeaderValue::from_static("*/*"));
        headers.insert("user-agent", HeaderValue::from_static("oha/1.16"));
        let n = 1_000_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let c = guard.check(std::hint::black_box(&headers));
            std::hint::black_box(&c);
        }
        let each = t.elapsed().as_nanos() as f64 / n as f64;
        println!("Guard::check: {each:.0} ns");
    }
}
