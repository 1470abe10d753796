//! `--header 'Name: value'`: extra headers on chaos's requests, typically a
//! credential. The value may name its secret instead of holding it, so the
//! secret stays out of shell history: `${env:NAME}` (an environment
//! variable) and `${file:PATH}` (a file's text, without its trailing new
//! line) are replaced wherever they occur in the value.
//!
//! A value is never printed: errors name the header and the reference
//! (`${env:SHOP_TOKEN}`), and the values are marked sensitive (their
//! `Debug` says so, and HTTP/2 would not index them).

use poem::http::{HeaderName, HeaderValue};
use std::str::FromStr;

/// Most bytes a `${file:PATH}` reference reads (64 KiB).
pub const MAX_FILE_BYTES: u64 = 64 << 10;

/// One `--header`, ready to send.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: HeaderName,
    /// Marked sensitive.
    pub value: HeaderValue,
}

/// Headers chaos cannot let a caller set: they frame the request body.
const RESERVED: &[&str] = &["content-length", "transfer-encoding", "connection"];

/// Parses every `--header`, substituting references; the first error stops.
pub fn parse_all(specs: &[String]) -> Result<Vec<Header>, String> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            parse(s).map_err(|e| match e.strip_prefix(NO_COLON) {
                // Which one (it cannot be named: it may be all value).
                Some(rest) => format!("--header number {}{rest}", i + 1),
                None => e,
            })
        })
        .collect()
}

const NO_COLON: &str = "a --header";

/// One `Name: value`.
pub fn parse(spec: &str) -> Result<Header, String> {
    let Some((name, value)) = spec.split_once(':') else {
        return Err(format!("{NO_COLON} is not `Name: value` (it has no colon)"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err("--header has no name before its colon (write `Name: value`)".into());
    }
    let header = HeaderName::from_str(name).map_err(|_| {
        format!(
            "--header {:?}: not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)",
            crate::fetch::printable(name)
        )
    })?;
    if RESERVED.contains(&header.as_str()) {
        return Err(format!(
            "--header {name}: chaos sets {name} itself; it cannot be given"
        ));
    }
    let text = substitute(name, value.trim())?;
    let mut value = HeaderValue::from_str(&text).map_err(|_| {
        format!(
            "--header {name}: its value{} is not a valid header value \
             (a control character, such as a new line inside it?)",
            if text.len() != value.trim().len() || value.contains("${") {
                " (after substituting its references)"
            } else {
                ""
            }
        )
    })?;
    value.set_sensitive(true);
    Ok(Header {
        name: header,
        value,
    })
}

/// `value` with each `${env:NAME}` and `${file:PATH}` replaced. What is
/// substituted is not scanned again (a secret may hold `${`).
fn substitute(header: &str, value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "--header {header}: `${{` without its closing `}}` \
                 (references are ${{env:NAME}} and ${{file:PATH}})"
            ));
        };
        let reference = &after[..end];
        if let Some(var) = reference.strip_prefix("env:") {
            if !crate::manifest::auth::is_env_name(var) {
                return Err(format!(
                    "--header {header}: ${{env:{}}}: not an environment variable name \
                     ([A-Za-z_][A-Za-z0-9_]*)",
                    crate::fetch::printable(var)
                ));
            }
            match std::env::var(var) {
                Ok(v) if v.is_empty() => {
                    return Err(format!(
                        "--header {header}: ${{env:{var}}} is set but empty"
                    ))
                }
                Ok(v) => out.push_str(&v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!(
                        "--header {header}: ${{env:{var}}} is not set (export {var} first)"
                    ))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!(
                        "--header {header}: ${{env:{var}}} is not UTF-8 text"
                    ))
                }
            }
        } else if let Some(path) = reference.strip_prefix("file:") {
            let shown = crate::fetch::printable(path);
            if path.is_empty() {
                return Err(format!("--header {header}: ${{file:}} names no file"));
            }
            let text = crate::manifest::load::read_bounded(
                std::path::Path::new(path),
                MAX_FILE_BYTES,
                "file",
                "the 64 KiB limit of a --header file",
            )
            .map_err(|e| format!("--header {header}: ${{file:{shown}}}: {e}"))?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(format!("--header {header}: ${{file:{shown}}} is empty"));
            }
            out.push_str(text);
        } else {
            return Err(format!(
                "--header {header}: a `${{…}}` reference must be ${{env:NAME}} or ${{file:PATH}}"
            ));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(h: &Header) -> &str {
        h.value.to_str().unwrap()
    }

    #[test]
    fn plain_headers_parse_and_are_sensitive() {
        let h = parse("X-API-Key:  k-123 ").unwrap();
        assert_eq!(h.name.as_str(), "x-api-key");
        assert_eq!(value(&h), "k-123");
        assert!(h.value.is_sensitive());
        assert!(!format!("{h:?}").contains("k-123"), "{h:?}");
        // A value may hold colons.
        assert_eq!(value(&parse("X-At: 12:30").unwrap()), "12:30");
    }

    #[test]
    fn env_and_file_references_are_substituted_anywhere() {
        // A name no other test sets.
        std::env::set_var("TELLTALE_CHAOS_HDR_TEST", "tok3n");
        let h = parse("Authorization: Bearer ${env:TELLTALE_CHAOS_HDR_TEST}").unwrap();
        assert_eq!(value(&h), "Bearer tok3n");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "s3cret${env:X}\r\n").unwrap();
        let spec = format!(
            "X-Key: a-${{file:{}}}-${{env:TELLTALE_CHAOS_HDR_TEST}}",
            f.display()
        );
        // File text is not scanned again; its trailing new line is dropped.
        assert_eq!(value(&parse(&spec).unwrap()), "a-s3cret${env:X}-tok3n");
    }

    #[test]
    fn errors_name_the_header_and_reference_never_the_value() {
        std::env::set_var("TELLTALE_CHAOS_HDR_NL", "line1\nline2");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        let cases: Vec<(String, &str)> = vec![
            ("Authorization Bearer xyz".into(), "not `Name: value`"),
            (": v".into(), "no name"),
            ("Bad Name: v".into(), "not a valid header name"),
            ("Content-Length: 3".into(), "chaos sets"),
            (
                "Authorization: Bearer ${env:TELLTALE_CHAOS_UNSET_VAR}".into(),
                "${env:TELLTALE_CHAOS_UNSET_VAR} is not set",
            ),
            ("X: ${env:1x}".into(), "not an environment variable name"),
            (
                format!("X-Key: ${{file:{}}}", missing.display()),
                "cannot read file",
            ),
            (format!("X-Key: ${{file:{}}}", big.display()), "64 KiB"),
            ("X-Key: pre${oops}".into(), "must be ${env:NAME}"),
            ("X-Key: pre${env:X".into(), "without its closing"),
            (
                "X-Key: ${env:TELLTALE_CHAOS_HDR_NL}".into(),
                "after substituting",
            ),
            ("X-Key: a\u{7f}b".into(), "not a valid header value"),
        ];
        for (spec, want) in cases {
            let e = parse(&spec).unwrap_err();
            assert!(e.contains(want), "{spec:?}: {e}");
            for secret in ["xyz", "line1", "pre", "a\u{7f}b"] {
                assert!(!e.contains(secret), "{spec:?} leaked {secret:?}: {e}");
            }
        }
        let e = parse(&format!("X-Key: ${{file:{}}}", missing.display())).unwrap_err();
        assert!(e.starts_with("--header X-Key: ${file:"), "{e}");
    }
}
