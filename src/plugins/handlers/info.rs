//! `info`: the service and its endpoints (`GET /`).

use super::*;
use poem::endpoint::make_sync;
use poem::http::StatusCode;
use poem::EndpointExt;
use serde_json::json;

pub struct InfoHandler;

struct Info {
    body: bytes::Bytes,
}

impl HandlerKind for InfoHandler {
    fn name(&self) -> &'static str {
        "info"
    }
    fn methods(&self) -> Option<&'static [HttpMethod]> {
        Some(&[HttpMethod::Get])
    }
    fn prepare(&self, ctx: &HandlerCtx<'_>) -> Result<Arc<dyn PreparedHandler>, Diagnostics> {
        ctx.no_data()?;
        ctx.options::<NoOptions>()?;
        let m = ctx.manifest;
        // The same body for every `info` endpoint of the manifest: built once.
        let body = ctx.cache.get_or_insert("info.body", || {
            let endpoints: Vec<_> = m
                .endpoints
                .iter()
                .map(|e| json!({"method": e.method.as_str(), "path": e.path, "summary": e.summary}))
                .collect();
            let body = json!({
                "service": m.service.name,
                "version": m.service.version,
                "description": m.service.description,
                "endpoints": endpoints,
                "docs": "/docs",
                "openapi": "/openapi.json",
            });
            bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
        });
        Ok(Arc::new(Info { body }))
    }
}

/// For kinds that take no options: any key is an error.
pub use super::typed::NoOptions;

impl PreparedHandler for Info {
    fn endpoint(&self, _rt: &Arc<dyn Host>) -> BoxEndpoint<'static, Response> {
        let body = self.body.clone();
        make_sync(move |_| json_bytes(StatusCode::OK, body.clone())).boxed()
    }
    fn doc(&self) -> OperationDoc {
        OperationDoc::json(json!({
            "type": "object",
            "required": ["service", "version", "endpoints"],
            "properties": {
                "service": {"type": "string"},
                "version": {"type": "string"},
                "description": {"type": "string"},
                "docs": {"type": "string"},
                "openapi": {"type": "string"},
                "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                    "method": {"type": "string"}, "path": {"type": "string"}, "summary": {"type": "string"}}}}
            }
        }))
    }
}
