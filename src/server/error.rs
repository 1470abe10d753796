//! JSON error bodies: every 4xx/5xx the server sends looks the same.

use poem::http::StatusCode;
use poem::Response;
use serde_json::json;

/// The JSON error body every 4xx and 5xx carries, as a poem-openapi type: a
/// handler's `ApiResponse` can answer with it (`Json<ErrorBody>`), and the
/// document shows the one shared `Error` schema.
///
/// ```
/// use poem_openapi::{payload::Json, ApiResponse};
/// use telltale::{ErrorBody, StatusCode};
///
/// #[derive(ApiResponse)]
/// enum Answer {
///     /// Nothing to say.
///     #[oai(status = 204)]
///     Done,
///     /// No such order.
///     #[oai(status = 404)]
///     NotFound(Json<ErrorBody>),
/// }
///
/// let body = ErrorBody::new(StatusCode::NOT_FOUND, "no order 7");
/// assert_eq!((body.status, body.error.as_str()), (404, "Not Found"));
/// let _answer = Answer::NotFound(Json(body));
/// ```
#[derive(Debug, Clone, PartialEq, poem_openapi::Object)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    /// The HTTP status.
    pub status: u16,
    /// The status's reason phrase.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// The query or path parameter at fault, if any.
    #[oai(skip_serializing_if_is_none)]
    pub parameter: Option<String>,
    /// The request body's field at fault (`items[0].qty`), if any.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

impl ErrorBody {
    /// The body of a `status` error with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            status: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").into(),
            message: message.into(),
            parameter: None,
            field: None,
        }
    }
}

/// A `status` error with `message`, as [`ErrorBody`] writes it:
/// `{"status": 404, "error": "Not Found", "message": "..."}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    body(
        status,
        json!({
            "status": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }),
    )
}

/// A 400 naming the offending query parameter.
pub fn bad_param(name: &str, message: &str) -> Response {
    bad_param_in("query", name, message)
}

/// A 400 naming the offending parameter of `place` (`query` or `path`).
pub fn bad_param_in(place: &str, name: &str, message: &str) -> Response {
    let status = StatusCode::BAD_REQUEST;
    body(
        status,
        json!({
            "status": 400,
            "error": "Bad Request",
            "message": format!("invalid {place} parameter `{name}`: {message}"),
            "parameter": name,
        }),
    )
}

/// At most this many characters of a client's value are echoed back.
pub const ECHO_CHARS: usize = 64;

/// `s` cut to [`ECHO_CHARS`] characters (with `…` when cut): what an error
/// body or a log line may echo of a client's method, path or value.
pub fn capped(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(ECHO_CHARS) {
        None => s.into(),
        Some((end, _)) => format!("{}…", &s[..end]).into(),
    }
}

/// A 400 naming the offending JSON field of a request body.
pub fn bad_field(field: &str, message: &str) -> Response {
    bad_field_status(StatusCode::BAD_REQUEST, field, message)
}

/// A 4xx naming the JSON field of a request body that caused it.
pub fn bad_field_status(status: StatusCode, field: &str, message: &str) -> Response {
    body(
        status,
        json!({
            "status": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": format!("invalid request body at `{field}`: {message}"),
            "field": field,
        }),
    )
}

fn body(status: StatusCode, v: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(serde_json::to_vec(&v).expect("json"))
}

/// The name of [`error_schema`] among the document's shared schemas.
pub const ERROR_SCHEMA: &str = "Error";

/// A reference to [`error_schema`], which every document holds once.
pub fn error_ref() -> serde_json::Value {
    json!({"$ref": format!("#/components/schemas/{ERROR_SCHEMA}")})
}

/// JSON schema of the error body, for the OpenAPI document.
pub fn error_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["status", "error", "message"],
        "properties": {
            "status": {"type": "integer"},
            "error": {"type": "string"},
            "message": {"type": "string"},
            "parameter": {"type": "string"},
            "field": {"type": "string"}
        }
    })
}
