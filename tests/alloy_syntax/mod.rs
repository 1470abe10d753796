//! A reader of Grafana Alloy's configuration syntax, and the documented
//! blocks and arguments of the components telltale renders (Alloy v1.5's
//! reference, `reference/components/<name>`): a rendered config must parse,
//! use only those blocks and arguments, give each component the blocks it
//! requires, and refer only to components it declares, by their exports.
//! There is no Alloy binary here; this is the check in its place.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// An attribute's value, as far as the checks need it.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Num(String),
    Bool(bool),
    List(Vec<Expr>),
    Object(Vec<(String, Expr)>),
    /// `a.b.c`: a reference to another component's export.
    Ref(Vec<String>),
}

/// A block: `name "label" { attrs; blocks }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    pub label: Option<String>,
    pub attrs: Vec<(String, Expr)>,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Punct(char),
}

fn tokens(text: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = text.chars().collect();
    let (mut i, mut out) = (0, Vec::new());
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            if i + 1 >= c.len() {
                return Err("an unclosed /* comment".into());
            }
            i += 2;
        } else if ch == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None | Some('\n') => return Err(format!("an unclosed string: {s:?}")),
                    Some('"') => break,
                    Some('\\') => {
                        let e = c.get(i + 1).ok_or("a string ends in \\")?;
                        match e {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            '"' => s.push('"'),
                            '\\' => s.push('\\'),
                            'u' => {
                                let hex: String = c[i + 2..i + 6].iter().collect();
                                let n = u32::from_str_radix(&hex, 16)
                                    .map_err(|_| format!("bad \\u escape {hex:?}"))?;
                                s.push(char::from_u32(n).ok_or("bad \\u code point")?);
                                i += 4;
                            }
                            other => return Err(format!("unknown escape \\{other}")),
                        }
                        i += 2;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if ch == '`' {
            let start = i + 1;
            i = start;
            while i < c.len() && c[i] != '`' {
                i += 1;
            }
            if i >= c.len() {
                return Err("an unclosed raw string".into());
            }
            out.push(Tok::Str(c[start..i].iter().collect()));
            i += 1;
        } else if ch.is_ascii_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            let start = i;
            while i < c.len() && (c[i].is_ascii_digit() || c[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(c[start..i].iter().collect()));
        } else if "{}[]()=,.".contains(ch) {
            out.push(Tok::Punct(ch));
            i += 1;
        } else {
            return Err(format!("unexpected character {ch:?}"));
        }
    }
    Ok(out)
}

/// A body: its attributes and its blocks.
type Body = (Vec<(String, Expr)>, Vec<Block>);

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.at + n)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn punct(&mut self, p: char) -> Result<(), String> {
        match self.next() {
            Some(Tok::Punct(q)) if q == p => Ok(()),
            other => Err(format!("expected {p:?}, found {other:?}")),
        }
    }
    fn is(&self, n: usize, p: char) -> bool {
        self.peek(n) == Some(&Tok::Punct(p))
    }

    /// Attributes and blocks until `}` (or the end, at the top).
    fn body(&mut self, top: bool) -> Result<Body, String> {
        let (mut attrs, mut blocks) = (Vec::new(), Vec::new());
        loop {
            match self.peek(0) {
                None if top => return Ok((attrs, blocks)),
                None => return Err("a block is not closed".into()),
                Some(Tok::Punct('}')) if !top => return Ok((attrs, blocks)),
                Some(Tok::Ident(_)) => {}
                other => return Err(format!("expected an attribute or a block, found {other:?}")),
            }
            let Some(Tok::Ident(first)) = self.next() else {
                unreachable!()
            };
            if self.is(0, '=') {
                self.next();
                attrs.push((first, self.expr()?));
                continue;
            }
            let mut name = first;
            while self.is(0, '.') {
                self.next();
                match self.next() {
                    Some(Tok::Ident(part)) => {
                        name.push('.');
                        name.push_str(&part);
                    }
                    other => {
                        return Err(format!(
                            "{name}: expected a name after '.', found {other:?}"
                        ))
                    }
                }
            }
            let label = match self.peek(0) {
                Some(Tok::Str(s)) => {
                    let s = s.clone();
                    self.next();
                    Some(s)
                }
                _ => None,
            };
            self.punct('{').map_err(|e| format!("{name}: {e}"))?;
            let (a, b) = self.body(false)?;
            self.punct('}')?;
            blocks.push(Block {
                name,
                label,
                attrs: a,
                blocks: b,
            });
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Expr::Str(s)),
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::Ident(id)) if id == "true" || id == "false" => Ok(Expr::Bool(id == "true")),
            Some(Tok::Ident(id)) => {
                let mut parts = vec![id];
                while self.is(0, '.') {
                    self.next();
                    match self.next() {
                        Some(Tok::Ident(p)) => parts.push(p),
                        other => return Err(format!("a reference: found {other:?}")),
                    }
                }
                Ok(Expr::Ref(parts))
            }
            Some(Tok::Punct('[')) => {
                let mut items = Vec::new();
                while !self.is(0, ']') {
                    items.push(self.expr()?);
                    if self.is(0, ',') {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.punct(']')?;
                Ok(Expr::List(items))
            }
            Some(Tok::Punct('{')) => {
                let mut fields = Vec::new();
                while !self.is(0, '}') {
                    let key = match self.next() {
                        Some(Tok::Ident(k)) | Some(Tok::Str(k)) => k,
                        other => return Err(format!("an object key: found {other:?}")),
                    };
                    self.punct('=')?;
                    fields.push((key, self.expr()?));
                    if self.is(0, ',') {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.punct('}')?;
                Ok(Expr::Object(fields))
            }
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

/// The top-level blocks of an Alloy config.
pub fn parse(text: &str) -> Result<Vec<Block>, String> {
    let mut p = Parser {
        toks: tokens(text)?,
        at: 0,
    };
    let (attrs, blocks) = p.body(true)?;
    if let Some((name, _)) = attrs.first() {
        return Err(format!("a top-level attribute {name:?}"));
    }
    Ok(blocks)
}

/// The documented shape of a block: its arguments, its inner blocks (by
/// name), which inner blocks it requires, and (for a component) its exports.
pub struct Shape {
    pub args: &'static [&'static str],
    pub blocks: &'static [(&'static str, Shape)],
    pub required: &'static [&'static str],
    pub exports: &'static [&'static str],
}

const fn args(args: &'static [&'static str]) -> Shape {
    Shape {
        args,
        blocks: &[],
        required: &[],
        exports: &[],
    }
}

const TLS: Shape = args(&[
    "insecure",
    "insecure_skip_verify",
    "ca_file",
    "cert_file",
    "key_file",
    "server_name",
]);

/// Every component telltale renders, from Alloy's component reference.
pub const COMPONENTS: &[(&str, Shape)] = &[
    (
        "local.file_match",
        Shape {
            args: &["path_targets", "sync_period"],
            blocks: &[],
            required: &[],
            exports: &["targets"],
        },
    ),
    (
        "loki.source.file",
        Shape {
            args: &[
                "targets",
                "forward_to",
                "encoding",
                "tail_from_end",
                "legacy_positions_file",
            ],
            blocks: &[],
            required: &[],
            exports: &[],
        },
    ),
    (
        "loki.process",
        Shape {
            args: &["forward_to"],
            blocks: &[
                (
                    "stage.json",
                    args(&["expressions", "source", "drop_malformed"]),
                ),
                ("stage.labels", args(&["values"])),
                ("stage.structured_metadata", args(&["values"])),
                ("stage.label_drop", args(&["values"])),
                (
                    "stage.timestamp",
                    args(&[
                        "source",
                        "format",
                        "fallback_formats",
                        "location",
                        "action_on_failure",
                    ]),
                ),
                (
                    "stage.cri",
                    args(&[
                        "max_partial_lines",
                        "max_partial_line_size",
                        "max_partial_line_size_truncate",
                    ]),
                ),
            ],
            required: &[],
            exports: &["receiver"],
        },
    ),
    (
        "loki.write",
        Shape {
            args: &["external_labels", "max_streams"],
            blocks: &[(
                "endpoint",
                args(&[
                    "url",
                    "name",
                    "headers",
                    "batch_size",
                    "batch_wait",
                    "tenant_id",
                ]),
            )],
            required: &["endpoint"],
            exports: &["receiver"],
        },
    ),
    (
        "discovery.kubernetes",
        Shape {
            args: &["role", "api_server", "kubeconfig_file"],
            blocks: &[
                ("namespaces", args(&["own_namespace", "names"])),
                ("selectors", args(&["role", "label", "field"])),
            ],
            required: &[],
            exports: &["targets"],
        },
    ),
    (
        "discovery.relabel",
        Shape {
            args: &["targets"],
            blocks: &[(
                "rule",
                args(&[
                    "source_labels",
                    "separator",
                    "regex",
                    "modulus",
                    "target_label",
                    "replacement",
                    "action",
                ]),
            )],
            required: &[],
            exports: &["output", "rules"],
        },
    ),
    (
        "otelcol.receiver.otlp",
        Shape {
            args: &[],
            blocks: &[
                (
                    "grpc",
                    Shape {
                        args: &[
                            "endpoint",
                            "transport",
                            "max_recv_msg_size",
                            "max_concurrent_streams",
                            "include_metadata",
                        ],
                        blocks: &[("tls", TLS)],
                        required: &[],
                        exports: &[],
                    },
                ),
                (
                    "http",
                    Shape {
                        args: &[
                            "endpoint",
                            "max_request_body_size",
                            "include_metadata",
                            "traces_url_path",
                            "metrics_url_path",
                            "logs_url_path",
                        ],
                        blocks: &[("tls", TLS)],
                        required: &[],
                        exports: &[],
                    },
                ),
                ("output", args(&["metrics", "logs", "traces"])),
            ],
            required: &["output"],
            exports: &[],
        },
    ),
    (
        "otelcol.exporter.otlp",
        Shape {
            args: &["timeout"],
            blocks: &[
                (
                    "client",
                    Shape {
                        args: &[
                            "endpoint",
                            "compression",
                            "headers",
                            "balancer_name",
                            "authority",
                            "auth",
                        ],
                        blocks: &[("tls", TLS)],
                        required: &[],
                        exports: &[],
                    },
                ),
                (
                    "sending_queue",
                    args(&["enabled", "num_consumers", "queue_size"]),
                ),
                (
                    "retry_on_failure",
                    args(&[
                        "enabled",
                        "initial_interval",
                        "max_interval",
                        "max_elapsed_time",
                    ]),
                ),
            ],
            required: &["client"],
            exports: &["input"],
        },
    ),
];

fn check_shape(at: &str, b: &Block, shape: &Shape, errs: &mut Vec<String>) {
    for (name, _) in &b.attrs {
        if !shape.args.contains(&name.as_str()) {
            errs.push(format!("{at}: unknown argument {name:?}"));
        }
    }
    for inner in &b.blocks {
        let here = format!("{at} > {}", inner.name);
        match shape.blocks.iter().find(|(n, _)| *n == inner.name) {
            None => errs.push(format!("{here}: unknown block")),
            Some((_, s)) => {
                if inner.label.is_some() {
                    errs.push(format!("{here}: an inner block has no label"));
                }
                check_shape(&here, inner, s, errs);
            }
        }
    }
    for r in shape.required {
        if !b.blocks.iter().any(|x| x.name == *r) {
            errs.push(format!("{at}: the required block {r:?} is missing"));
        }
    }
}

fn refs<'a>(e: &'a Expr, out: &mut Vec<&'a [String]>) {
    match e {
        Expr::Ref(parts) => out.push(parts),
        Expr::List(items) => items.iter().for_each(|i| refs(i, out)),
        Expr::Object(fields) => fields.iter().for_each(|(_, v)| refs(v, out)),
        _ => {}
    }
}

fn all_refs<'a>(b: &'a Block, out: &mut Vec<&'a [String]>) {
    b.attrs.iter().for_each(|(_, v)| refs(v, out));
    b.blocks.iter().for_each(|i| all_refs(i, out));
}

/// Every problem of `text` as an Alloy config of these components: its
/// syntax, unknown components, blocks and arguments, missing required
/// blocks, labels, and references to what it does not declare or export.
pub fn check(text: &str) -> Vec<String> {
    let blocks = match parse(text) {
        Ok(b) => b,
        Err(e) => return vec![format!("syntax: {e}")],
    };
    let mut errs = Vec::new();
    let mut declared: BTreeMap<(String, String), &'static Shape> = BTreeMap::new();
    for b in &blocks {
        let Some((_, shape)) = COMPONENTS.iter().find(|(n, _)| *n == b.name) else {
            errs.push(format!("{}: not a component telltale renders", b.name));
            continue;
        };
        let Some(label) = &b.label else {
            errs.push(format!("{}: a component needs a label", b.name));
            continue;
        };
        let at = format!("{} {label:?}", b.name);
        if declared
            .insert((b.name.clone(), label.clone()), shape)
            .is_some()
        {
            errs.push(format!("{at}: declared twice"));
        }
        check_shape(&at, b, shape, &mut errs);
    }
    for b in &blocks {
        let mut rs = Vec::new();
        all_refs(b, &mut rs);
        for r in rs {
            // `<component name>.<label>.<export>`: the name is all but the last two.
            let found = (1..r.len().saturating_sub(1)).any(|n| {
                let name = r[..n].join(".");
                declared
                    .get(&(name, r[n].clone()))
                    .is_some_and(|s| r.len() == n + 2 && s.exports.contains(&r[n + 1].as_str()))
            });
            if !found {
                errs.push(format!(
                    "{}: {} is no declared component's export",
                    b.name,
                    r.join(".")
                ));
            }
        }
    }
    errs
}
