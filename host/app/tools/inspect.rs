//! `sse-wasm inspect`: loads a module (or a Python function file) exactly as the server does and
//! lists what it declares.

use std::io::Write;
use std::path::Path;

use crate::functions::registry::function_id;
use crate::functions::reload::function_files;
use crate::model::Mode;
use crate::wasm::is_core_module;
use crate::wasm::{CacheLocation, Guest, Limits, Runtime, content_hash, is_python_file};
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
        None if guest.python().is_some() => writeln!(
            out,
            "{}: {} function(s); a Python function file, run by the data-science engine",
            path.display(),
            guest.functions.len()
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

/// Loads `path` as the server would, with the compile cache at `cache` if given: a Python
/// function file is run by the data-science engine in the same folder.
pub(crate) fn load(runtime: &Runtime, cache: Option<&CacheLocation>, path: &Path) -> anyhow::Result<Guest> {
    let cache = cache.and_then(|c| c.open());
    if !is_python_file(path) {
        return Ok(Guest::load(runtime, cache.as_ref(), path)?.0);
    }
    let source = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The engine is the one core module of the folder; components are not loaded to find it.
    let engine = function_files(dir)?
        .into_iter()
        .filter(|p| !is_python_file(p) && is_core_module_file(p))
        .find_map(|p| Guest::load(runtime, cache.as_ref(), &p).ok().map(|(g, _)| g).filter(Guest::runs_python_files))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: a Python function file is run by the data-science engine, and {} holds none \
                 (`make datasci` puts datasci.wasm in functions/)",
                path.display(),
                dir.display()
            )
        })?;
    Ok(Guest::from_python(&engine, path, &source, content_hash(&source))?)
}

/// True when the file at `path` starts as a core WebAssembly module does.
fn is_core_module_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && is_core_module(&head)
}
