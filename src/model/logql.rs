//! Just enough LogQL reading for the consistency lint: the label matchers of
//! every stream selector (`{level="error", logger=~".+"}`).
//!
//! Like [`super::promql`], a tokenizer, not a parser: Grafana's own LogQL
//! grammar (`@grafana/lezer-logql`, in `tests/js`) is the final word.

/// One `label op "value"` inside a stream selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

/// Skips a quoted string starting at `b[i]`; returns the index after it and its content.
fn string_at(s: &str, i: usize) -> Result<(usize, String), String> {
    let b = s.as_bytes();
    let q = b[i];
    let mut j = i + 1;
    let mut out = String::new();
    while j < b.len() && b[j] != q {
        if b[j] == b'\\' && q != b'`' && j + 1 < b.len() {
            j += 1;
        }
        let ch = s[j..].chars().next().unwrap_or('\0');
        out.push(ch);
        j += ch.len_utf8().max(1);
    }
    if j >= b.len() {
        return Err(format!("unterminated string starting at byte {i}"));
    }
    Ok((j + 1, out))
}

/// Every matcher of every stream selector in `expr`, in order.
pub fn stream_matchers(expr: &str) -> Result<Vec<Matcher>, String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut selectors = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'`' => i = string_at(expr, i)?.0,
            b'{' => {
                selectors += 1;
                i += 1;
                loop {
                    while i < b.len() && (b[i] as char).is_whitespace() {
                        i += 1;
                    }
                    if i < b.len() && b[i] == b'}' {
                        i += 1;
                        break;
                    }
                    let start = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    let label = &expr[start..i];
                    if label.is_empty() {
                        return Err(format!("expected a label name at byte {start}"));
                    }
                    while i < b.len() && (b[i] as char).is_whitespace() {
                        i += 1;
                    }
                    let op = ["=~", "!~", "!=", "="]
                        .into_iter()
                        .find(|op| expr[i..].starts_with(op))
                        .ok_or_else(|| format!("expected =, !=, =~ or !~ after {label:?}"))?;
                    i += op.len();
                    while i < b.len() && (b[i] as char).is_whitespace() {
                        i += 1;
                    }
                    if i >= b.len() || !(b[i] == b'"' || b[i] == b'`') {
                        return Err(format!("expected a quoted value for {label:?}"));
                    }
                    let (next, value) = string_at(expr, i)?;
                    i = next;
                    out.push(Matcher {
                        label: label.to_string(),
                        op: op.to_string(),
                        value,
                    });
                    while i < b.len() && (b[i] as char).is_whitespace() {
                        i += 1;
                    }
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b'}') => {}
                        _ => return Err("unterminated stream selector".into()),
                    }
                }
            }
            _ => i += 1,
        }
    }
    if selectors == 0 {
        return Err("no stream selector ({label=\"value\"}) found".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(e: &str) -> Vec<(String, String, String)> {
        stream_matchers(e)
            .unwrap()
            .into_iter()
            .map(|m| (m.label, m.op, m.value))
            .collect()
    }

    #[test]
    fn reads_selectors_and_skips_strings() {
        assert_eq!(
            labels(
                r#"sum by (logger) (count_over_time({level="error", logger=~"a.+"} |= "{x=\"y\"}" [5m]))"#
            ),
            [
                ("level".into(), "=".into(), "error".into()),
                ("logger".into(), "=~".into(), "a.+".into())
            ]
        );
        assert_eq!(
            labels(r#"{logger!~`x`} | json | line_format "{{.message}}""#),
            [("logger".into(), "!~".into(), "x".into())]
        );
    }

    #[test]
    fn rejects_malformed_selectors() {
        assert!(stream_matchers("rate(x[5m])").is_err());
        assert!(stream_matchers(r#"{level "error"}"#).is_err());
        assert!(stream_matchers(r#"{level="error""#).is_err());
        assert!(stream_matchers(r#"{level=error}"#).is_err());
    }
}
