//! The guest author's toolkit: `sse-wasm inspect` and `sse-wasm call` load a module exactly as the
//! server does and run it under the same limits, so a module can be tried without Qlik.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use prost::Message;

use crate::columns::DataType;
use crate::config::{CacheLocation, Limits};
use crate::engine::{CancelFlag, Engine};
use crate::invoke;
use crate::module::{Mode, Module};
use crate::pb;
use crate::registry::{Registry, function_id};

fn type_name(function_type: pb::FunctionType) -> &'static str {
    match function_type {
        pb::FunctionType::Scalar => "SCALAR",
        pb::FunctionType::Aggregation => "AGGREGATION",
        pb::FunctionType::Tensor => "TENSOR",
    }
}

/// Loads `path` as the server would, with the compile cache at `cache` if given.
fn load(engine: &Engine, cache: Option<&CacheLocation>, path: &Path) -> anyhow::Result<Module> {
    let cache = cache.and_then(|c| c.open(engine.wasmtime()));
    Ok(Module::load(engine, cache.as_ref(), path)?.0)
}

/// Loads `path` and writes what it declares to `out`.
pub fn inspect(path: &Path, limits: Limits, cache: Option<&CacheLocation>, out: &mut impl Write) -> anyhow::Result<()> {
    let engine = Engine::new(limits)?;
    let module = load(&engine, cache, path)?;
    match &module.scripts {
        Some(scripts) => writeln!(
            out,
            "{}: a script engine for {} (scripts starting with #!{}); fits qlik:sse/script-engine@0.1.0",
            path.display(),
            scripts.language,
            scripts.language
        )?,
        None => {
            writeln!(out, "{}: {} function(s); fits qlik:sse/plugin@0.1.0", path.display(), module.functions.len())?
        }
    }
    if module.scripts.is_some() && !module.functions.is_empty() {
        writeln!(out, "and {} function(s); fits qlik:sse/plugin@0.1.0", module.functions.len())?;
    }
    for def in &module.functions {
        let params: Vec<String> = def.params.iter().map(|(name, t)| format!("{name}: {}", t.name())).collect();
        let returns = match &def.table {
            Some(table) => {
                let fields: Vec<String> = table.fields.iter().map(|(n, t)| format!("{n}: {}", t.name())).collect();
                format!("table {}({})", table.name, fields.join(", "))
            }
            None => def.return_type.name().to_owned(),
        };
        let mode = if def.mode == Mode::PerBatch { "per-batch" } else { "per-call" };
        let cache = if def.cacheable { "" } else { ", not cacheable" };
        writeln!(out, "  {}({}) -> {returns}", def.name, params.join(", "))?;
        writeln!(out, "      id {}, {}, {mode}{cache}", function_id(&def.name), type_name(def.function_type))?;
        if !def.description.is_empty() {
            writeln!(out, "      {}", def.description)?;
        }
    }
    Ok(())
}

/// One input value for a parameter of type `data_type`, as Qlik would send it.
fn dual(value: &str, data_type: DataType) -> pb::Dual {
    let number = value.trim().parse::<f64>().unwrap_or(f64::NAN);
    match data_type {
        DataType::Numeric => pb::Dual { num_data: number, str_data: String::new() },
        DataType::Text => pb::Dual { num_data: 0.0, str_data: value.to_owned() },
        DataType::Dual => pb::Dual { num_data: number, str_data: value.to_owned() },
    }
}

fn show(dual: &pb::Dual, data_type: DataType) -> String {
    match data_type {
        DataType::Numeric => dual.num_data.to_string(),
        DataType::Text => dual.str_data.clone(),
        DataType::Dual => format!("{} ({})", dual.str_data, dual.num_data),
    }
}

/// Calls `function` of `path` with `rows` (one value per parameter each) and writes the answer
/// to `out`: a header of result column names, then one tab-separated line per row.
pub fn call(
    path: &Path,
    function: &str,
    rows: &[Vec<String>],
    limits: Limits,
    cache: Option<&CacheLocation>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let engine = Engine::new(limits)?;
    let module = load(&engine, cache, path)?;
    let registry = Registry::new(vec![Arc::new(module)]);
    let Some(entry) = registry.get(function_id(function)).filter(|e| e.def().name == function) else {
        let names: Vec<&str> = registry.entries().iter().map(|e| e.def().name.as_str()).collect();
        anyhow::bail!("{} has no function {function}; it has: {}", path.display(), names.join(", "));
    };
    let def = entry.def();
    let params = def.param_types();
    let mut request = pb::BundledRows::default();
    for (line, values) in rows.iter().enumerate() {
        anyhow::ensure!(
            values.len() == params.len(),
            "row {} has {} value(s); {function} takes {} parameter(s)",
            line + 1,
            values.len(),
            params.len()
        );
        request.rows.push(pb::Row { duals: values.iter().zip(&params).map(|(v, &t)| dual(v, t)).collect() });
    }
    let mut messages = vec![bytes::Bytes::from(request.encode_to_vec())].into_iter();
    let mut answers = Vec::new();
    let result = invoke::run(
        &engine,
        entry,
        CancelFlag::default(),
        || Ok(messages.next()),
        |message| {
            answers.push(message.0);
            Ok(())
        },
    );
    result.map_err(|error| {
        let status = error.to_status();
        anyhow::anyhow!("{:?}: {}", status.code(), status.message())
    })?;
    let results = def.result_types();
    let names: Vec<String> = match &def.table {
        Some(table) => table.fields.iter().map(|(name, _)| name.clone()).collect(),
        None => vec![def.name.clone()],
    };
    writeln!(out, "{}", names.join("\t"))?;
    for answer in answers {
        for row in pb::BundledRows::decode(answer)?.rows {
            let cells: Vec<String> = row.duals.iter().zip(&results).map(|(d, &t)| show(d, t)).collect();
            writeln!(out, "{}", cells.join("\t"))?;
        }
    }
    Ok(())
}

/// Splits CSV lines into values (no quoting: values are separated by commas, one row per line).
pub fn csv_rows(input: &str) -> Vec<Vec<String>> {
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.trim().to_owned()).collect())
        .collect()
}
