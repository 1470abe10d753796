//! Parsing a typed handler's input: path and query parameters ([`Params`])
//! and the JSON request body ([`RequestBody`]) into their types, each
//! checked against the type's own schema first.

use super::schema::{object_schema, SchemaCheck};
use super::Empty;
use crate::server::error::{bad_field_status, bad_param_in, json_error};
use poem::http::StatusCode;
use poem::Response;
use poem_openapi::registry::{MetaOperationParam, MetaParamIn, MetaSchemaRef, Registry};
use poem_openapi::types::{IsObjectType, ParseFromJSON};
use serde_json::{Map, Value as Json};

/// Why a request's input was refused, as its JSON error response.
#[derive(Debug)]
pub struct InputError(Box<Response>);

impl InputError {
    pub(super) fn new(r: Response) -> Self {
        InputError(Box::new(r))
    }
    pub(super) fn into_response(self) -> Response {
        *self.0
    }
}

/// What parsing a [`Params`] type needs, resolved once at start-up from
/// the type's schema, so that a request looks nothing up by name.
#[derive(Default)]
pub struct Plan {
    fields: Vec<PlanField>,
    /// The object's schema, compiled: the bounds and enums of given values.
    check: Option<SchemaCheck>,
}

struct PlanField {
    name: &'static str,
    /// JSON type of the value (`integer`, `array`, ...), and of an array's items.
    ty: &'static str,
    item: &'static str,
    required: bool,
}

/// Path or query parameters: a poem-openapi `Object` (each field one
/// parameter), or [`Empty`].
pub trait Params: Sized + Send + 'static {
    /// The documented parameters (schemas registered in `registry`).
    fn describe(registry: &mut Registry, location: MetaParamIn) -> Vec<MetaOperationParam>;
    /// The parsing plan, from the schemas `describe` registered; an error
    /// where the type's schema does not compile.
    fn plan(registry: &Registry) -> Result<Plan, String>;
    /// Parses the parameters that `get` finds by name in `place`.
    fn parse(
        place: MetaParamIn,
        plan: &Plan,
        get: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<Self, InputError>;
}

impl Params for Empty {
    fn describe(_: &mut Registry, _: MetaParamIn) -> Vec<MetaOperationParam> {
        Vec::new()
    }
    fn plan(_: &Registry) -> Result<Plan, String> {
        Ok(Plan::default())
    }
    fn parse(_: MetaParamIn, _: &Plan, _: &dyn Fn(&str) -> Vec<String>) -> Result<Self, InputError> {
        Ok(Empty)
    }
}

impl<T: ParseFromJSON + IsObjectType + Send + 'static> Params for T {
    fn describe(registry: &mut Registry, location: MetaParamIn) -> Vec<MetaOperationParam> {
        T::register(registry);
        let r = T::schema_ref();
        let Some(s) = object_schema(registry, &r) else {
            return Vec::new();
        };
        s.properties
            .iter()
            .map(|(name, schema)| MetaOperationParam {
                name: name.to_string(),
                schema: schema.clone(),
                in_type: location,
                description: object_schema(registry, schema)
                    .and_then(|p| p.description)
                    .map(String::from),
                // A path parameter is always required.
                required: location == MetaParamIn::Path || s.required.contains(name),
                deprecated: false,
                explode: true,
                style: None,
            })
            .collect()
    }

    fn plan(registry: &Registry) -> Result<Plan, String> {
        let r = T::schema_ref();
        let Some(s) = object_schema(registry, &r) else {
            return Ok(Plan::default());
        };
        let fields = s
            .properties
            .iter()
            .map(|(name, schema)| {
                let ps = object_schema(registry, schema);
                let item = ps
                    .and_then(|p| p.items.as_deref())
                    .and_then(|i| object_schema(registry, i))
                    .map_or("string", |i| i.ty);
                PlanField {
                    name,
                    ty: ps.map_or("string", |p| p.ty),
                    item,
                    required: s.required.contains(name),
                }
            })
            .collect();
        Ok(Plan {
            fields,
            check: Some(SchemaCheck::new(&r, registry)?),
        })
    }

    fn parse(
        place: MetaParamIn,
        plan: &Plan,
        get: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<Self, InputError> {
        let param_error = |name: &str, msg: &str| {
            let place = if place == MetaParamIn::Path {
                "path"
            } else {
                "query"
            };
            InputError::new(bad_param_in(place, name, msg))
        };
        let mut obj = Map::new();
        for f in &plan.fields {
            let raw = get(f.name);
            if raw.is_empty() {
                if f.required {
                    return Err(param_error(f.name, "is required"));
                }
                continue;
            }
            let v = if f.ty == "array" {
                let vals: Result<Vec<Json>, String> =
                    raw.iter().map(|x| scalar(f.item, x)).collect();
                Json::Array(vals.map_err(|m| param_error(f.name, &m))?)
            } else {
                scalar(f.ty, &raw[0]).map_err(|m| param_error(f.name, &m))?
            };
            obj.insert(f.name.to_string(), v);
        }
        let v = Json::Object(obj);
        // Bounds and enums of the values given (none given: nothing to check).
        if let (Some(c), false) = (&plan.check, v.as_object().is_some_and(Map::is_empty)) {
            if let Err((field, msg)) = c.check(&v) {
                return Err(param_error(&field, &msg));
            }
        }
        T::parse_from_json(Some(v)).map_err(|e| {
            InputError::new(json_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid parameters: {}", e.message()),
            ))
        })
    }
}

/// A parameter's text as the JSON value of type `ty` (`integer`, ...).
fn scalar(ty: &str, raw: &str) -> Result<Json, String> {
    let shown: String = raw.chars().take(64).collect();
    let bad = |what: &str| format!("expected {what}, got {shown:?}");
    match ty {
        "integer" => raw
            .parse::<i64>()
            .map(Json::from)
            .or_else(|_| raw.parse::<u64>().map(Json::from))
            .map_err(|_| bad("an integer")),
        "number" => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| bad("a number")),
        "boolean" => raw
            .parse::<bool>()
            .map(Json::Bool)
            .map_err(|_| bad("true or false")),
        _ => Ok(Json::String(raw.to_string())),
    }
}

/// A JSON request body: a poem-openapi `Object`, or [`Empty`] for none.
pub trait RequestBody: Sized + Send + 'static {
    /// The body's schema, registered in `registry`; `None` takes no body.
    fn describe(registry: &mut Registry) -> Option<MetaSchemaRef>;
    /// Parses the body (`None`: the request had none), checked first by
    /// `check`, the compiled schema `describe` returned.
    fn parse(body: Option<&[u8]>, check: Option<&SchemaCheck>) -> Result<Self, InputError>;
}

impl RequestBody for Empty {
    fn describe(_: &mut Registry) -> Option<MetaSchemaRef> {
        None
    }
    fn parse(_: Option<&[u8]>, _: Option<&SchemaCheck>) -> Result<Self, InputError> {
        Ok(Empty)
    }
}

impl<T: ParseFromJSON + IsObjectType + Send + 'static> RequestBody for T {
    fn describe(registry: &mut Registry) -> Option<MetaSchemaRef> {
        T::register(registry);
        Some(T::schema_ref())
    }

    fn parse(body: Option<&[u8]>, check: Option<&SchemaCheck>) -> Result<Self, InputError> {
        let unprocessable = |field: &str, msg: &str| {
            InputError::new(bad_field_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                field,
                msg,
            ))
        };
        let Some(bytes) = body.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) else {
            return Err(InputError::new(json_error(
                StatusCode::BAD_REQUEST,
                "a JSON request body is required",
            )));
        };
        let v: Json = serde_json::from_slice(bytes).map_err(|e| {
            InputError::new(bad_field_status(
                StatusCode::BAD_REQUEST,
                "body",
                &format!("malformed JSON: {e}"),
            ))
        })?;
        if let Some(Err((field, msg))) = check.map(|c| c.check(&v)) {
            let field = if field.is_empty() {
                "body".into()
            } else {
                field
            };
            return Err(unprocessable(&field, &msg));
        }
        T::parse_from_json(Some(v)).map_err(|e| unprocessable("body", e.message()))
    }
}
