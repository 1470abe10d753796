//! `collection`: a list read from a YAML/JSON data file, paged with
//! `?limit=&offset=`.

use super::*;
use crate::server::error::bad_param;
use bytes::{BufMut, Bytes, BytesMut};
use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::{EndpointExt, Request};
use serde::Deserialize;
use serde_json::json;

pub struct CollectionHandler;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Options {
    /// Page size when `limit` is absent.
    default_limit: usize,
    /// Largest accepted `limit`.
    max_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_limit: 20,
            max_limit: 100,
        }
    }
}

struct Collection {
    pages: Arc<Pages>,
    /// The page's schema (items derived from the data), shared by the
    /// endpoints of one data file as a named schema of the document.
    page_schema: Arc<(String, Json)>,
}

/// What a request needs; the data never change after startup.
struct Pages {
    /// Each item, already serialized (shared by the endpoints of one file).
    items: Arc<[Bytes]>,
    opts: Options,
    /// The answer to a request without a query, rendered once.
    default_page: Bytes,
}

fn schema_of(v: &Json) -> Json {
    match v {
        Json::Null => json!({}),
        Json::Bool(_) => json!({"type": "boolean"}),
        Json::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
        Json::Number(_) => json!({"type": "number"}),
        Json::String(_) => json!({"type": "string"}),
        Json::Array(a) => {
            json!({"type": "array", "items": a.first().map(schema_of).unwrap_or(json!({}))})
        }
        Json::Object(o) => {
            let props: serde_json::Map<String, Json> =
                o.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect();
            json!({"type": "object", "properties": props})
        }
    }
}

impl HandlerKind for CollectionHandler {
    fn name(&self) -> &'static str {
        "collection"
    }
    fn methods(&self) -> Option<&'static [HttpMethod]> {
        Some(&[HttpMethod::Get])
    }
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        let opts: Options = ctx.options()?;
        if opts.max_limit == 0 || opts.default_limit == 0 || opts.default_limit > opts.max_limit {
            return Err(Diagnostics(vec![ctx.source.error(
                &ctx.at("options"),
                format!(
                    "need 0 < default_limit <= max_limit (got {} and {})",
                    opts.default_limit, opts.max_limit
                ),
            )]));
        }
        let (items, page_schema) = loaded(ctx)?;
        let default_page = render_page(&items, opts.default_limit, 0);
        Ok(Arc::new(Collection {
            pages: Arc::new(Pages {
                items,
                opts,
                default_page,
            }),
            page_schema,
        }))
    }
}

/// A data file's items, serialized, and the schema of a page of them
/// (its component name, and the schema).
type LoadedItems = (Arc<[Bytes]>, Arc<(String, Json)>);

/// The items of the endpoint's data file, read and serialized once per
/// file and validation (20,000 endpoints of one file read it once). A file
/// that fails is not kept: each endpoint naming it gets its own error.
fn loaded(ctx: &HandlerCtx<'_>) -> Result<LoadedItems, Diagnostics> {
    type Files = std::rc::Rc<std::cell::RefCell<std::collections::HashMap<String, LoadedItems>>>;
    let files: Files = ctx.cache.get_or_insert("collection.files", Files::default);
    let key = ctx.endpoint.data.clone().unwrap_or_default();
    if let Some(hit) = files.borrow().get(&key) {
        return Ok(hit.clone());
    }
    let items = load_items(
        ctx.source,
        ctx.endpoint,
        ctx.index,
        ctx.manifest.service.data_limit_bytes,
    )?;
    let item_schema = items
        .first()
        .map(|o| schema_of(&Json::Object(o.clone())))
        .unwrap_or(json!({"type": "object"}));
    let page = json!({
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": item_schema},
            "total": {"type": "integer", "description": "Number of items in the collection"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"}
        }
    });
    let name: String = format!("Page_{key}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let page_schema = Arc::new((name, page));
    let items: Arc<[Bytes]> = items
        .iter()
        .map(|o| Bytes::from(serde_json::to_vec(o).expect("json")))
        .collect();
    files
        .borrow_mut()
        .insert(key, (items.clone(), page_schema.clone()));
    Ok((items, page_schema))
}

/// A rejected query parameter: its name and why.
struct ParamError(String, String);

/// Parses an integer query parameter within `[min, max]`.
/// Largest `offset` (2^53 - 1: exact in JSON, and far past any page).
const MAX_OFFSET: usize = (1 << 53) - 1;

fn int_param(raw: &str, name: &str, min: usize, max: usize) -> Result<Option<usize>, ParamError> {
    match raw.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ParamError(
            name.into(),
            format!(
                "expected an integer from {min} to {max}, got {:?}",
                crate::server::error::capped(raw)
            ),
        )),
    }
}

fn page(c: &Pages, req: &Request) -> Result<Response, ParamError> {
    let query = req.uri().query().unwrap_or("");
    if query.is_empty() {
        return Ok(json_bytes(StatusCode::OK, c.default_page.clone()));
    }
    let (mut limit, mut offset) = (None, None);
    for (k, v) in form_pairs(query) {
        match k.as_ref() {
            "limit" => limit = int_param(&v, "limit", 1, c.opts.max_limit)?,
            "offset" => offset = int_param(&v, "offset", 0, MAX_OFFSET)?,
            other => {
                return Err(ParamError(
                    crate::server::error::capped(other).into_owned(),
                    "unknown query parameter (known: limit, offset)".into(),
                ))
            }
        }
    }
    let limit = limit.unwrap_or(c.opts.default_limit);
    let offset = offset.unwrap_or(0);
    Ok(json_bytes(
        StatusCode::OK,
        render_page(&c.items, limit, offset),
    ))
}

/// `{"items":[...],"total":N,"limit":L,"offset":O}` for one page.
fn render_page(items: &[Bytes], limit: usize, offset: usize) -> Bytes {
    let start = offset.min(items.len());
    let end = start.saturating_add(limit).min(items.len());
    let page = &items[start..end];
    let mut buf = BytesMut::with_capacity(64 + page.iter().map(|b| b.len() + 1).sum::<usize>());
    buf.put_slice(b"{\"items\":[");
    for (i, item) in page.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(item);
    }
    // Numbers by hand: `format!` was a third of this handler's cost.
    buf.put_slice(b"],\"total\":");
    put_usize(&mut buf, items.len());
    buf.put_slice(b",\"limit\":");
    put_usize(&mut buf, limit);
    buf.put_slice(b",\"offset\":");
    put_usize(&mut buf, offset);
    buf.put_u8(b'}');
    buf.freeze()
}

fn put_usize(buf: &mut BytesMut, n: usize) {
    buf.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `a=1&b=x%20y` → decoded pairs (a key with no `=` has an empty value).
fn form_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// Query strings a page refuses (a 400).
const BAD_QUERIES: &[&str] = &["limit=0", "limit=abc", "offset=-1", "bogus=1"];

impl PreparedHandler for Collection {
    /// Good GETs, and GETs with a query string it refuses.
    fn chaos(&self, endpoint: &Endpoint, _model: &Model) -> ChaosTraffic {
        let traffic = ChaosTraffic::safe_gets(endpoint.method);
        if endpoint.method != HttpMethod::Get {
            return traffic;
        }
        traffic.with_bad(BadRequests {
            kind: BadKind::BadQueryParam,
            status: 400,
            variants: (BAD_QUERIES.iter())
                .map(|q| BadVariant {
                    query: Some(q),
                    body: None,
                })
                .collect(),
        })
    }
    fn endpoint(&self, _rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        let pages = self.pages.clone();
        make_sync(move |req: Request| match page(&pages, &req) {
            Ok(r) => r,
            Err(ParamError(name, why)) => bad_param(&name, &why),
        })
        .boxed()
    }
    fn doc(&self) -> OperationDoc {
        let (name, page) = &*self.page_schema;
        let mut doc = OperationDoc::json(json!({"$ref": format!("#/components/schemas/{name}")}));
        doc.components = vec![(name.clone(), page.clone())];
        doc.params = vec![
            ParamDoc {
                name: "limit".into(),
                location: ParamIn::Query,
                schema: json!({"type": "integer", "minimum": 1, "maximum": self.pages.opts.max_limit, "default": self.pages.opts.default_limit}),
                required: false,
                description: "Page size".into(),
            },
            ParamDoc {
                name: "offset".into(),
                location: ParamIn::Query,
                schema: json!({"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
                required: false,
                description: "Items to skip".into(),
            },
        ];
        doc.responses.push((
            400,
            "Bad query parameter".into(),
            "application/json",
            crate::server::error::error_ref(),
        ));
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::{form_pairs, put_usize};
    use bytes::BytesMut;

    #[test]
    fn the_prerendered_default_page_is_the_explicit_first_page() {
        use super::{page, render_page, Options, Pages};
        use poem::Request;
        let items: Vec<bytes::Bytes> = (0..30)
            .map(|i| bytes::Bytes::from(format!("{{\"id\":{i}}}")))
            .collect();
        let pages = Pages {
            default_page: render_page(&items, 20, 0),
            items: items.into(),
            opts: Options::default(),
        };
        let body = |uri: &str| {
            let resp = page(&pages, &Request::builder().uri_str(uri).finish())
                .ok()
                .unwrap();
            let bytes = futures_body(resp);
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let implicit = body("/products");
        assert_eq!(implicit, body("/products?limit=20&offset=0"));
        assert_eq!(implicit["items"].as_array().unwrap().len(), 20);
        assert_eq!(implicit["total"], 30);
    }

    fn futures_body(resp: poem::Response) -> Vec<u8> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(resp.into_body().into_vec())
            .unwrap()
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 100, 12345, usize::MAX] {
            let mut buf = BytesMut::new();
            put_usize(&mut buf, n);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), n.to_string());
        }
    }

    #[test]
    fn percent_decoding() {
        let decode = |s: &str| form_pairs(&format!("k={s}")).next().unwrap().1;
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%é%"), "%é%");
    }
}
