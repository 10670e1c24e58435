//! `sse-wasm inspect`: loads a module exactly as the server does and lists what it declares.

use std::io::Write;
use std::path::Path;

use crate::model::Mode;
use crate::registry::function_id;
use crate::wasm::{CacheLocation, Guest, Limits, Runtime};
use crate::wire::pb;

/// Loads `path` and writes what it declares to `out`.
pub fn inspect(path: &Path, limits: Limits, cache: Option<&CacheLocation>, out: &mut impl Write) -> anyhow::Result<()> {
    let runtime = Runtime::new(limits)?;
    let guest = load(&runtime, cache, path)?;
    match &guest.scripts {
        Some(scripts) => writeln!(
            out,
            "{}: a script engine for {} (scripts starting with #!{}); {}",
            path.display(),
            scripts.language,
            scripts.language,
            scripts.kind()
        )?,
        None => writeln!(out, "{}: {} function(s); fits qlik:sse/plugin@0.1.0", path.display(), guest.functions.len())?,
    }
    if guest.scripts.is_some() && !guest.functions.is_empty() {
        writeln!(out, "and {} function(s); fits qlik:sse/plugin@0.1.0", guest.functions.len())?;
    }
    for def in &guest.functions {
        let params: Vec<String> =
            def.params.iter().map(|(name, t)| format!("{name}: {}", pb::DataType::from(*t).as_str_name())).collect();
        let returns = match &def.table {
            Some(table) => {
                let fields: Vec<String> = table
                    .fields
                    .iter()
                    .map(|(n, t)| format!("{n}: {}", pb::DataType::from(*t).as_str_name()))
                    .collect();
                format!("table {}({})", table.name, fields.join(", "))
            }
            None => pb::DataType::from(def.return_type).as_str_name().to_owned(),
        };
        let mode = if def.mode == Mode::PerBatch { "per-batch" } else { "per-call" };
        let cache = if def.cacheable { "" } else { ", not cacheable" };
        writeln!(out, "  {}({}) -> {returns}", def.name, params.join(", "))?;
        writeln!(
            out,
            "      id {}, {}, {mode}{cache}",
            function_id(&def.name),
            pb::FunctionType::from(def.function_type).as_str_name()
        )?;
        if !def.description.is_empty() {
            writeln!(out, "      {}", def.description)?;
        }
    }
    Ok(())
}

/// Loads `path` as the server would, with the compile cache at `cache` if given.
pub(crate) fn load(runtime: &Runtime, cache: Option<&CacheLocation>, path: &Path) -> anyhow::Result<Guest> {
    let cache = cache.and_then(|c| c.open());
    Ok(Guest::load(runtime, cache.as_ref(), path)?.0)
}
