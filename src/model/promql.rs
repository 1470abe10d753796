//! Just enough PromQL reading for the consistency lint: which metric names
//! an expression selects, and which of them sit under `rate`-like functions.
//!
//! This is a tokenizer, not a full parser: the real parser (Prometheus
//! itself, via `promtool` and the end-to-end test) is the final word.

/// Prometheus duration (`15s`, `1m30s`, `30d`) in seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let mult = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                total += n / 1000;
                continue;
            }
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            'y' => 365 * 86400,
            _ => return None,
        };
        total += n * mult;
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

/// One metric selector found in an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: String,
    /// Innermost enclosing function, if any (`rate`, `sum`, ...).
    pub function: Option<String>,
    /// Byte offset in the expression.
    pub offset: usize,
}

/// Keywords that are neither metrics nor functions (besides [`LABEL_LIST`]).
const OTHER_KEYWORDS: &[&str] = &[
    "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN",
];

fn is_keyword(w: &str) -> bool {
    LABEL_LIST.contains(&w) || OTHER_KEYWORDS.contains(&w)
}

/// Keywords followed by a parenthesised label list.
const LABEL_LIST: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Index just past the string literal that starts at `start`.
fn skip_quoted(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != q {
        if b[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Metric names selected by `expr`, with the function each appears under.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    // Stack of open parens: Some(function name) or None (grouping / label list).
    let mut parens: Vec<(Option<String>, bool)> = Vec::new();
    let mut i = 0;
    let mut last_word = String::new();
    // `sum by (x) (...)`: the aggregation named before its modifier.
    let mut pending: Option<String> = None;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            '"' | '\'' | '`' => i = skip_quoted(b, i),
            '{' => {
                // label matchers: skip to the closing brace, honouring strings
                i += 1;
                while i < b.len() && b[i] != b'}' {
                    i = if matches!(b[i], b'"' | b'\'' | b'`') {
                        skip_quoted(b, i)
                    } else {
                        i + 1
                    };
                }
                i += 1;
            }
            '[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                i += 1;
            }
            '(' => {
                let is_labels = LABEL_LIST.contains(&last_word.as_str());
                let func = if is_labels {
                    None
                } else if last_word.is_empty() || is_keyword(&last_word) {
                    pending.take()
                } else {
                    Some(last_word.clone())
                };
                parens.push((func, is_labels));
                last_word.clear();
                i += 1;
            }
            ')' => {
                parens.pop();
                last_word.clear();
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < b.len()
                    && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut j = i;
                while j < b.len() && (b[j] as char).is_whitespace() {
                    j += 1;
                }
                let rest = &expr[j..];
                let modifier = ["by", "without"].iter().any(|k| {
                    rest.starts_with(k)
                        && !rest[k.len()..]
                            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                });
                let is_call = (j < b.len() && b[j] == b'(') || (modifier && !is_keyword(word));
                if modifier && !is_keyword(word) {
                    pending = Some(word.to_string());
                }
                let in_label_list = parens.last().is_some_and(|p| p.1);
                let is_var = start > 0 && b[start - 1] == b'$';
                if !is_call && !in_label_list && !is_var && !is_keyword(word) {
                    let function = parens.iter().rev().find_map(|p| p.0.clone());
                    out.push(Selector {
                        metric: word.to_string(),
                        function,
                        offset: start,
                    });
                }
                last_word = word.to_string();
            }
            c if c.is_ascii_digit() || c == '.' => {
                // numbers (incl. 1e3, 0x1f) — skip
                while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                last_word.clear();
            }
            _ => {
                if !c.is_whitespace() {
                    last_word.clear();
                }
                i += 1;
            }
        }
    }
    out
}

/// A range written in an expression: `[5m]`, or the range of a subquery `[1h:1m]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The range as written (`5m`, `$__rate_interval`).
    pub text: String,
    /// The function the ranged selector is under (`rate`, `avg_over_time`, ...).
    pub function: Option<String>,
}

/// Every range window of `expr`, in order.
pub fn windows(expr: &str) -> Vec<Window> {
    let b = expr.as_bytes();
    let sels = selectors(expr);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_quoted(b, i),
            b'{' => {
                i += 1;
                while i < b.len() && b[i] != b'}' {
                    i = if matches!(b[i], b'"' | b'\'' | b'`') {
                        skip_quoted(b, i)
                    } else {
                        i + 1
                    };
                }
                i += 1;
            }
            b'[' => {
                let start = i + 1;
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                let inner = &expr[start..i.min(expr.len())];
                let range = inner.split(':').next().unwrap_or("").trim();
                let function = sels
                    .iter()
                    .rev()
                    .find(|s| s.offset < start)
                    .and_then(|s| s.function.clone());
                out.push(Window {
                    text: range.to_string(),
                    function,
                });
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_found_with_their_function() {
        let w = windows(
            r#"sum(rate(a{x="[1m]"}[30s])) / avg_over_time(b[$__rate_interval]) + max_over_time(c[1h:1m])"#,
        );
        let got: Vec<(&str, Option<&str>)> = w
            .iter()
            .map(|w| (w.text.as_str(), w.function.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("30s", Some("rate")),
                ("$__rate_interval", Some("avg_over_time")),
                ("1h", Some("max_over_time"))
            ]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Some(15));
        assert_eq!(parse_duration("1m30s"), Some(90));
        assert_eq!(parse_duration("30d"), Some(30 * 86400));
        assert_eq!(parse_duration("500ms"), Some(0));
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration("abc"), None);
    }

    #[test]
    fn finds_metrics_and_their_functions() {
        let s = selectors(
            r#"histogram_quantile(0.95, sum by (le, path) (rate(http_request_duration_seconds_bucket{job=~"$job", x="a}b"}[$__rate_interval])))"#,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].metric, "http_request_duration_seconds_bucket");
        assert_eq!(s[0].function.as_deref(), Some("rate"));

        let s = selectors("sum by (status) (rate(x_total[5m])) + sum without (a) (y)");
        let names: Vec<_> = s
            .iter()
            .map(|x| (x.metric.as_str(), x.function.as_deref()))
            .collect();
        assert_eq!(names, [("x_total", Some("rate")), ("y", Some("sum"))]);

        let s =
            selectors("sum(http_requests_total) / ignoring(status) group_left foo_total > bool 3");
        let names: Vec<_> = s.iter().map(|x| x.metric.as_str()).collect();
        assert_eq!(names, ["http_requests_total", "foo_total"]);
        assert_eq!(s[0].function.as_deref(), Some("sum"));
        assert_eq!(s[1].function, None);
    }
}
