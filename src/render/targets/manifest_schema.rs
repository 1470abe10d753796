//! `manifest.schema.json`: the JSON Schema of `manifest.yaml`, generated
//! from the manifest's types (their doc comments are its descriptions), so
//! that an editor completes and checks the file (`manifest.yaml` names it in
//! its `yaml-language-server` comment) and `render --check` keeps it current.

use crate::render::Ctx;

pub struct ManifestSchemaTarget;

/// Where it is written, relative to the output directory.
pub const PATH: &str = "manifest.schema.json";

impl super::RenderTarget for ManifestSchemaTarget {
    fn name(&self) -> &'static str {
        "manifest-schema"
    }
    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    fn render(&self, _ctx: &Ctx) -> Result<Vec<(String, String)>, String> {
        // The same for every manifest: generated once per process.
        static SCHEMA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let text = SCHEMA.get_or_init(crate::manifest::schema);
        Ok(vec![(PATH.into(), text.clone())])
    }
}
