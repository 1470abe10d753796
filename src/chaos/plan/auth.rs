//! Which endpoints need a credential, which header carries it, and which
//! of them chaos can call with the `--header`s it was given (the others'
//! requests must be 401s).

use crate::manifest::{Endpoint, SchemeKind};
use crate::model::Model;

/// The header a scheme reads its credential from (lowercase).
fn credential_header(model: &Model, scheme: &str) -> Option<String> {
    credential_header_as_declared(model, scheme).map(|h| h.to_ascii_lowercase())
}

/// The same, spelled as the manifest does (`Authorization` for tokens).
fn credential_header_as_declared(model: &Model, scheme: &str) -> Option<String> {
    let s = model.manifest.auth.schemes.get(scheme)?;
    Some(match s.kind {
        SchemeKind::ApiKey => s.header_name().to_string(),
        SchemeKind::Bearer | SchemeKind::Jwt => "Authorization".into(),
    })
}

/// The headers that would carry a credential to the endpoints in
/// [`unauthenticated`] (as the manifest spells them, sorted).
pub fn wanted_headers(model: &Model, given: &[String]) -> Vec<String> {
    let mut v: Vec<String> = (model.manifest.endpoints.iter())
        .filter(|e| !callable(model, e, given))
        .flat_map(|e| model.manifest.auth.requirement(e).schemes.iter())
        .filter_map(|s| credential_header_as_declared(model, s))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Every header a scheme of the manifest reads (lowercase): what a request
/// without credentials leaves out of the `--header`s.
pub fn credential_headers(model: &Model) -> Vec<String> {
    let mut v: Vec<String> = (model.manifest.auth.schemes.keys())
        .filter_map(|k| credential_header(model, k))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Whether `ep` needs a credential.
pub fn protected(model: &Model, ep: &Endpoint) -> bool {
    !model.manifest.auth.requirement(ep).is_open()
}

/// Whether chaos may call `ep` expecting its own answer: it is open, or
/// one of the `given` header names (lowercase) is where a scheme it
/// accepts reads its credential.
pub(super) fn callable(model: &Model, ep: &Endpoint, given: &[String]) -> bool {
    let req = model.manifest.auth.requirement(ep);
    req.is_open()
        || req
            .schemes
            .iter()
            .any(|s| credential_header(model, s).is_some_and(|h| given.contains(&h)))
}

/// `METHOD path` of each protected endpoint no `given` header has a
/// credential for (its requests are expected to be 401s).
pub fn unauthenticated(model: &Model, given: &[String]) -> Vec<String> {
    model
        .manifest
        .endpoints
        .iter()
        .filter(|e| !callable(model, e, given))
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}
