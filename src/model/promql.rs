//! PromQL reading for the lint, the links and `verify`, on a real parser
//! (the `promql-parser` crate, the same grammar as Prometheus): the metrics
//! an expression selects, with the function each sits under and the labels
//! its matchers name, and the labels its `by`/`without`/`on`/`ignoring`
//! clauses name. Grafana's variables (`$__rate_interval`, `$job`, ...) are
//! replaced by values of the same kind before parsing.

use promql_parser::parser::{self, Expr};

/// One metric selector found in an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: String,
    /// Innermost enclosing function or aggregation, if any (`rate`, `sum`, ...).
    pub function: Option<String>,
    /// Labels its matchers name (besides `__name__`).
    pub labels: Vec<String>,
}

/// What the lint needs to know of an expression.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    pub selectors: Vec<Selector>,
    /// Labels named by `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    pub grouping: Vec<String>,
    /// Labels aggregations keep (`by`): those a panel's series carry.
    pub by: Vec<String>,
}

/// Grafana's variables, replaced for the parser: ranges by a duration,
/// anything else (inside strings, where they appear) left alone.
const RANGE_VARIABLES: [&str; 4] = ["$__rate_interval", "$__interval", "$__range", "$__auto"];

/// `expr` as the parser reads it, and for each replacement its position
/// in the original and the difference in length (to map columns back).
fn for_parser(expr: &str) -> (String, Vec<(usize, isize)>) {
    let mut out = String::with_capacity(expr.len());
    let mut shifts = Vec::new();
    let mut i = 0;
    while i < expr.len() {
        let rest = &expr[i..];
        match RANGE_VARIABLES.iter().find(|v| rest.starts_with(**v)) {
            Some(v) => {
                out.push_str("1m");
                shifts.push((i, v.len() as isize - 2));
                i += v.len();
            }
            None => {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    (out, shifts)
}

/// A syntax error: the parser's message and the 0-based column (in the
/// original expression) where the expression stops being a valid start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub column: usize,
}

/// Whether a parser message only says the input ended too soon (so a
/// longer text could still be valid).
fn is_incomplete(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("end of input") || m.contains("unclosed") || m.contains("invalid promql query")
}

/// Parses `expr` (Grafana variables allowed).
pub fn analyze(expr: &str) -> Result<Analysis, SyntaxError> {
    let (text, shifts) = for_parser(expr);
    let parsed = parser::parse(&text).map_err(|message| {
        // The column: the first prefix the parser rejects for a reason
        // other than ending too soon (the parser's messages carry none).
        let mut at = text.len();
        for (i, c) in text.char_indices() {
            let end = i + c.len_utf8();
            if let Err(e) = parser::parse(&text[..end]) {
                if !is_incomplete(&e) {
                    at = i;
                    break;
                }
            }
        }
        let mut column = at;
        for (pos, delta) in &shifts {
            if *pos < column {
                column = (column as isize + delta) as usize;
            }
        }
        SyntaxError { message, column }
    })?;
    let mut a = Analysis::default();
    walk(&parsed, None, &mut a);
    Ok(a)
}

fn labels_of(l: &promql_parser::label::Labels) -> impl Iterator<Item = String> + '_ {
    l.labels.iter().cloned()
}

fn walk(e: &Expr, function: Option<&str>, a: &mut Analysis) {
    match e {
        Expr::Aggregate(x) => {
            if let Some(m) = &x.modifier {
                a.grouping.extend(labels_of(m.labels()));
                if m.is_include() {
                    a.by.extend(labels_of(m.labels()));
                }
            }
            let op = x.op.to_string();
            if let Some(p) = &x.param {
                walk(p, function, a);
            }
            walk(&x.expr, Some(&op), a);
        }
        Expr::Unary(x) => walk(&x.expr, function, a),
        Expr::Binary(x) => {
            if let Some(m) = &x.modifier {
                if let Some(matching) = &m.matching {
                    a.grouping.extend(labels_of(matching.labels()));
                }
                if let Some(l) = m.card.labels() {
                    a.grouping.extend(labels_of(l));
                }
            }
            walk(&x.lhs, function, a);
            walk(&x.rhs, function, a);
        }
        Expr::Paren(x) => walk(&x.expr, function, a),
        Expr::Subquery(x) => walk(&x.expr, function, a),
        Expr::VectorSelector(vs) => selector(vs, function, a),
        Expr::MatrixSelector(ms) => selector(&ms.vs, function, a),
        Expr::Call(c) => {
            for arg in &c.args.args {
                walk(arg, Some(c.func.name), a);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn selector(vs: &parser::VectorSelector, function: Option<&str>, a: &mut Analysis) {
    let name = vs.name.clone().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__")
            .map(|m| m.value.clone())
    });
    let Some(metric) = name else { return };
    let labels = vs
        .matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten())
        .filter(|m| m.name != "__name__")
        .map(|m| m.name.clone())
        .collect();
    a.selectors.push(Selector {
        metric,
        function: function.map(str::to_string),
        labels,
    });
}

/// Metric names selected by `expr`, with the function each appears under
/// (none when it does not parse: `validate` reports that).
pub fn selectors(expr: &str) -> Vec<Selector> {
    analyze(expr).map(|a| a.selectors).unwrap_or_default()
}

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
    let mut out = Vec::new();
    // Open parentheses: the identifier before each (a function, or none).
    let mut open: Vec<Option<String>> = Vec::new();
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
                let function = open.iter().rev().find_map(|f| f.clone());
                out.push(Window {
                    text: range.to_string(),
                    function,
                });
                i += 1;
            }
            b'(' => {
                let before = expr[..i].trim_end();
                let word: String = before
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let keyword = [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ];
                open.push((!word.is_empty() && !keyword.contains(&word.as_str())).then_some(word));
                i += 1;
            }
            b')' => {
                open.pop();
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

    #[test]
    fn labels_and_grouping_are_read() {
        let a = analyze(r#"sum by (path) (rate(x_total{job=~"$job", nolabel="x"}[$__rate_interval])) / ignoring(status) sum(y)"#).unwrap();
        assert_eq!(a.selectors[0].labels, ["job", "nolabel"]);
        assert_eq!(a.grouping, ["status", "path"]);
    }

    #[test]
    fn a_syntax_error_has_its_column() {
        let e = analyze("sum(rate(x[5m])) ++ )").unwrap_err();
        assert_eq!(e.column, 20, "{e:?}");
        let e = analyze("rate(x[$__rate_interval]) ) ").unwrap_err();
        assert_eq!(e.column, 26, "{e:?}");
        assert!(analyze("sum(rate(x[5m])").is_err());
    }
}
