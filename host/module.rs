//! A loaded component: compiled once, pre-instantiated, its function declarations read and checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::Component;

use crate::bindings::{FUNCTIONS_EXPORT, Plugin, PluginPre, SCRIPTS_EXPORT};
use crate::cache::{CompileCache, ContentHash, content_hash};
use crate::columns::DataType;
use crate::engine::{CallState, Engine, guarded};
use crate::error::{CallError, LoadError};
use crate::pb;
use crate::script::ScriptEngine;

/// The most functions one component may declare.
pub const MAX_FUNCTIONS: usize = 1000;
/// The longest function, parameter or field name accepted.
const MAX_NAME: usize = 128;
/// The most parameters or table fields one function may declare.
const MAX_COLUMNS: usize = 256;

/// How the host drives a function over the batches of a call (see `wit/sse.wit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `call` per batch, answered at once, row-aligned.
    PerBatch,
    /// One `invocation` per call: `update` per batch, then `finish`.
    PerCall,
}

/// The output columns of a table function.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    /// The table's name.
    pub name: String,
    /// Column names and types, in order.
    pub fields: Vec<(String, DataType)>,
}

/// One function as a component declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionDef {
    /// The name Qlik users call it by.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Qlik's function type.
    pub function_type: pb::FunctionType,
    /// The type of the (first) result column.
    pub return_type: DataType,
    /// Parameter names and types, in order.
    pub params: Vec<(String, DataType)>,
    /// How the host drives it.
    pub mode: Mode,
    /// The output columns of a table function.
    pub table: Option<TableDef>,
    /// False when Qlik must not cache its answers.
    pub cacheable: bool,
}

impl FunctionDef {
    /// The parameter types, in order.
    pub fn param_types(&self) -> Vec<DataType> {
        self.params.iter().map(|(_, t)| *t).collect()
    }

    /// The result column types, in order.
    pub fn result_types(&self) -> Vec<DataType> {
        match &self.table {
            Some(table) => table.fields.iter().map(|(_, t)| *t).collect(),
            None => vec![self.return_type],
        }
    }

    /// How many rows the whole call must answer for `rows_in` input rows; `None` when any number
    /// is allowed (table functions driven per call).
    pub fn expected_rows(&self, rows_in: usize) -> Option<usize> {
        match (self.function_type, self.mode, &self.table) {
            (pb::FunctionType::Aggregation, ..) => Some(1),
            (_, Mode::PerCall, Some(_)) => None,
            _ => Some(rows_in),
        }
    }

    /// Checks the declaration against the rules of the WIT world.
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_identifier(&self.name).map_err(|e| format!("function name {:?} {e}", self.name))?;
        let name = &self.name;
        if self.description.len() > 4096 {
            return Err(format!("{name}: the description is longer than 4096 bytes"));
        }
        if self.function_type == pb::FunctionType::Aggregation && self.mode != Mode::PerCall {
            return Err(format!("{name}: an aggregation must be per-call (it answers once, after every row)"));
        }
        if self.params.len() > MAX_COLUMNS {
            return Err(format!("{name}: {} parameters, more than {MAX_COLUMNS}", self.params.len()));
        }
        for (param, _) in &self.params {
            check_label(param).map_err(|e| format!("{name}: parameter name {param:?} {e}"))?;
        }
        if let Some(table) = &self.table {
            check_label(&table.name).map_err(|e| format!("{name}: table name {:?} {e}", table.name))?;
            if table.fields.is_empty() || table.fields.len() > MAX_COLUMNS {
                return Err(format!("{name}: a table needs 1 to {MAX_COLUMNS} fields, not {}", table.fields.len()));
            }
            for (field, _) in &table.fields {
                check_label(field).map_err(|e| format!("{name}: field name {field:?} {e}"))?;
            }
            if table.fields[0].1 != self.return_type {
                return Err(format!("{name}: the return type differs from the type of the table's first field"));
            }
        }
        Ok(())
    }
}

/// Function names: letters, digits and underscore (Qlik's rule), not starting with a digit.
fn check_identifier(name: &str) -> Result<(), &'static str> {
    check_label(name)?;
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("starts with a digit");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("has characters other than letters, digits and underscore");
    }
    Ok(())
}

/// Parameter, table and field names: shown to people, so printable and short.
fn check_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_NAME {
        return Err("is longer than 128 bytes");
    }
    if name.chars().any(char::is_control) {
        return Err("has control characters");
    }
    Ok(())
}

/// Where a module's machine code came from, and how long getting it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled with Cranelift.
    Fresh(Duration),
    /// Read from the compile cache.
    FromCache(Duration),
}

impl std::fmt::Display for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fresh(took) => write!(f, "compiled in {:.1} ms", took.as_secs_f64() * 1e3),
            Self::FromCache(took) => write!(f, "cache hit, {:.1} ms", took.as_secs_f64() * 1e3),
        }
    }
}

/// A component ready to serve: compiled, linked, its functions known.
pub struct Module {
    /// The file it came from.
    pub path: PathBuf,
    /// Its file name, for logs and guest output.
    pub name: Arc<str>,
    /// Its functions, in the order of `describe` (a function's index is its position).
    pub functions: Vec<FunctionDef>,
    /// The SHA-256 of the file's bytes, to tell a real change from a touch.
    pub hash: ContentHash,
    /// Present when the component exports `functions`.
    pre: Option<PluginPre<CallState>>,
    /// Present when the component exports `scripts`: it is a script engine.
    pub scripts: Option<ScriptEngine>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).field("functions", &self.functions.len()).finish()
    }
}

impl Module {
    /// Reads, compiles (or takes from `cache`) and describes the component at `path`.
    pub fn load(engine: &Engine, cache: Option<&CompileCache>, path: &Path) -> Result<(Self, Compiled), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        Self::from_bytes(engine, cache, path, &bytes, content_hash(&bytes))
    }

    /// Compiles (or takes from `cache`) and describes the component `bytes`, read from `path`,
    /// whose SHA-256 is `hash` (the caller has it already, to tell a change from a touch).
    pub fn from_bytes(
        engine: &Engine,
        cache: Option<&CompileCache>,
        path: &Path,
        bytes: &[u8],
        hash: ContentHash,
    ) -> Result<(Self, Compiled), LoadError> {
        let started = Instant::now();
        let (component, compiled) = match cache.and_then(|c| c.load(engine.wasmtime(), path, &hash)) {
            Some(component) => (component, Compiled::FromCache(started.elapsed())),
            None => {
                let component =
                    engine.compile(bytes).map_err(|reason| LoadError::Compile { path: path.to_owned(), reason })?;
                (component, Compiled::Fresh(started.elapsed()))
            }
        };
        let module = Self::from_component(engine, path, &component, hash)?;
        // Only components that fit the world and describe themselves are worth caching.
        if let (Some(cache), Compiled::Fresh(_)) = (cache, compiled) {
            cache.store(&hash, &component);
        }
        Ok((module, compiled))
    }

    /// Links a compiled component, asks it for its functions and checks them.
    fn from_component(
        engine: &Engine,
        path: &Path,
        component: &Component,
        hash: ContentHash,
    ) -> Result<Self, LoadError> {
        let world = |reason| LoadError::World { path: path.to_owned(), reason };
        let exports = |name| component.get_export_index(None, name).is_some();
        let (offers_functions, offers_scripts) = (exports(FUNCTIONS_EXPORT), exports(SCRIPTS_EXPORT));
        if !offers_functions && !offers_scripts {
            return Err(world(wasmtime::format_err!("it exports neither {FUNCTIONS_EXPORT} nor {SCRIPTS_EXPORT}")));
        }
        let instance_pre = engine.linker().instantiate_pre(component).map_err(world)?;
        let name: Arc<str> = path.file_name().map_or_else(|| "?".into(), |n| n.to_string_lossy().into());
        let scripts = offers_scripts
            .then(|| {
                ScriptEngine::new(engine, &name, instance_pre.clone(), |reason| LoadError::Declaration {
                    path: path.to_owned(),
                    reason: format!("script engine: {reason}"),
                })
            })
            .transpose()?;
        if !offers_functions {
            return Ok(Self { path: path.to_owned(), name, functions: Vec::new(), hash, pre: None, scripts });
        }
        let pre = PluginPre::new(instance_pre).map_err(world)?;

        let mut store = engine.store(&name, None);
        let describe = format!("{name} (describe)");
        let plugin = guarded(&mut store, &describe, |store| pre.instantiate(store))
            .map_err(|reason| LoadError::Describe { path: path.to_owned(), reason })?;
        let defs = guarded(&mut store, &describe, |store| plugin.qlik_sse_functions().call_describe(store))
            .map_err(|reason| LoadError::Describe { path: path.to_owned(), reason })?;

        let declaration = |reason| LoadError::Declaration { path: path.to_owned(), reason };
        if defs.len() > MAX_FUNCTIONS {
            return Err(declaration(format!("declares {} functions, more than {MAX_FUNCTIONS}", defs.len())));
        }
        let functions: Vec<FunctionDef> = defs.into_iter().map(FunctionDef::from).collect();
        for (i, function) in functions.iter().enumerate() {
            function.validate().map_err(declaration)?;
            if functions[..i].iter().any(|f| f.name == function.name) {
                return Err(declaration(format!("declares {} twice", function.name)));
            }
        }
        Ok(Self { path: path.to_owned(), name, functions, hash, pre: Some(pre), scripts })
    }

    /// What it offers, for the log: its function names, and the language it runs scripts in.
    pub fn offers(&self) -> String {
        let functions = self.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
        match (&self.scripts, functions.is_empty()) {
            (Some(scripts), true) => format!("a script engine for {}", scripts.language),
            (Some(scripts), false) => format!("{functions}, and a script engine for {}", scripts.language),
            (None, _) => functions,
        }
    }

    /// A fresh instance in `store`.
    pub fn instantiate(&self, store: &mut Store<CallState>, function: &str) -> Result<Plugin, CallError> {
        let pre = self.pre.as_ref().ok_or_else(|| CallError::Internal(format!("{} offers no functions", self.name)))?;
        guarded(store, function, |store| pre.instantiate(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_qliks_rules() {
        assert!(check_identifier("MaxOfColumns_2").is_ok());
        assert!(check_identifier("_x").is_ok());
        assert_eq!(check_identifier(""), Err("is empty"));
        assert_eq!(check_identifier("2x"), Err("starts with a digit"));
        assert!(check_identifier("Sum Of").is_err());
        assert!(check_identifier("Summe_ä").is_err());
        assert!(check_identifier(&"x".repeat(129)).is_err());
    }
}
