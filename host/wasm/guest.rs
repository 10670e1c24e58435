//! A loaded guest: a component compiled (or taken from the compile cache) once, pre-instantiated,
//! its function declarations read and checked — or a Python function file run by the
//! data-science engine; each call instantiates it afresh.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, Instance};

use crate::error::{CallError, LoadError};
use crate::model::{FunctionDef, MAX_FUNCTIONS};

use super::cache::{CompileCache, Compiled, ContentHash, content_hash, load_or_compile};
use super::component::ahead;
use super::component::bindings::{FUNCTIONS_EXPORT, PluginPre, SCRIPTS_EXPORT};
use super::component::instance::{FunctionExports, FunctionInstance};
use super::datasci::engine::DataSci;
use super::datasci::pyfile::PyFile;
use super::models::AppModels;
use super::runtime::clock::unreported;
use super::runtime::sandbox::{CallControl, CallState, CancelFlag, enter};
use super::runtime::{Runtime, module_name};
use super::scripts::ScriptEngine;

/// True for a core WebAssembly module (version 1), false for a component or anything else.
pub(crate) fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// A guest ready to serve: a component compiled and linked, or a Python function file; its
/// functions known.
pub struct Guest {
    /// The file it came from.
    pub path: PathBuf,
    /// Its file name, for logs and guest output.
    pub name: Arc<str>,
    /// Its functions, in the order of `describe` (a function's index is its position).
    pub functions: Vec<FunctionDef>,
    /// The SHA-256 of the file's bytes, to tell a real change from a touch.
    pub hash: ContentHash,
    /// Present when the component exports `functions`.
    exports: Option<FunctionExports>,
    /// Present when the component exports `scripts`: it is a script engine.
    pub scripts: Option<ScriptEngine>,
    /// Present for a Python function file.
    python: Option<PyFile>,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest").field("path", &self.path).field("functions", &self.functions.len()).finish()
    }
}

impl Guest {
    /// Reads, compiles (or takes from `cache`) and describes the component at `path`.
    pub fn load(runtime: &Runtime, cache: Option<&CompileCache>, path: &Path) -> Result<(Self, Compiled), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        Self::from_bytes(runtime, cache, path, &bytes, content_hash(&bytes))
    }

    /// Compiles (or takes from `cache`) and describes the component `bytes`, read from `path`,
    /// whose SHA-256 is `hash` (the caller has it already, to tell a change from a touch).
    pub fn from_bytes(
        runtime: &Runtime,
        cache: Option<&CompileCache>,
        path: &Path,
        bytes: &[u8],
        hash: ContentHash,
    ) -> Result<(Self, Compiled), LoadError> {
        if is_core_module(bytes) {
            // Not a component: the data-science engine's snapshot, run by its own engine.
            let (engine, language, compiled) = DataSci::load(runtime, cache, path, bytes, &hash)?;
            let name = module_name(path);
            let scripts = Some(ScriptEngine::datasci(language, engine));
            return Ok((
                Self { path: path.to_owned(), name, functions: Vec::new(), hash, exports: None, scripts, python: None },
                compiled,
            ));
        }
        let engine = runtime.wasmtime();
        let compile_error = |reason| LoadError::Compile { path: path.to_owned(), reason };
        // Only components that fit the world and describe themselves are cached.
        load_or_compile::<Component, _, _>(engine, cache, runtime.metrics(), (path, bytes, &hash), compile_error, |c| {
            Self::from_component(runtime, path, c, hash)
        })
    }

    /// Links a compiled component, asks it for its functions and checks them.
    fn from_component(
        runtime: &Runtime,
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
        let instance_pre = runtime.linker().instantiate_pre(component).map_err(world)?;
        let name = module_name(path);
        let scripts = offers_scripts
            .then(|| {
                ScriptEngine::new(runtime, &name, instance_pre.clone(), |reason| LoadError::Declaration {
                    path: path.to_owned(),
                    reason: format!("script engine: {reason}"),
                })
            })
            .transpose()?;
        if !offers_functions {
            return Ok(Self {
                path: path.to_owned(),
                name,
                functions: Vec::new(),
                hash,
                exports: None,
                scripts,
                python: None,
            });
        }
        let pre = PluginPre::new(instance_pre).map_err(world)?;

        let mut store = runtime.store(&name, None);
        let describe = format!("{name} (describe)");
        let plugin = enter(&mut store, &describe, |store| pre.instantiate(store))
            .map_err(|reason| LoadError::Describe { path: path.to_owned(), reason })?;
        let defs = enter(&mut store, &describe, |store| plugin.qlik_sse_functions().call_describe(store))
            .map_err(|reason| LoadError::Describe { path: path.to_owned(), reason })?;

        let functions: Vec<FunctionDef> = defs.into_iter().map(FunctionDef::from).collect();
        check_declarations(path, &functions)?;
        let exports = Some(FunctionExports::new(&pre).map_err(world)?);
        Ok(Self { path: path.to_owned(), name, functions, hash, exports, scripts, python: None })
    }

    /// Runs the Python function file `source`, read from `path`, in `engine` (the loaded
    /// data-science engine) and checks what it declares.
    pub fn from_python(engine: &Guest, path: &Path, source: &[u8], hash: ContentHash) -> Result<Self, LoadError> {
        let datasci =
            engine.scripts.as_ref().and_then(ScriptEngine::datasci_engine).ok_or_else(|| LoadError::Declaration {
                path: path.to_owned(),
                reason: format!("{} is not the data-science engine", engine.path.display()),
            })?;
        let (file, functions) = PyFile::load(datasci, path, source)?;
        check_declarations(path, &functions)?;
        let name = module_name(path);
        Ok(Self { path: path.to_owned(), name, functions, hash, exports: None, scripts: None, python: Some(file) })
    }

    /// True for the data-science engine, which runs Python function files.
    pub fn runs_python_files(&self) -> bool {
        self.scripts.as_ref().is_some_and(|s| s.datasci_engine().is_some())
    }

    /// The Python function file it is, if it is one.
    pub(crate) fn python(&self) -> Option<&PyFile> {
        self.python.as_ref()
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

    /// A fresh instance, in a store of its own, for one call of function number `index` (in the
    /// order of `describe`) that `control` stops; `models`, the calling app's models if the host
    /// keeps a store, open to the guest once it is instantiated.
    pub fn instantiate(
        self: &Arc<Self>,
        runtime: &Runtime,
        index: u32,
        control: &CallControl,
        models: Option<AppModels>,
    ) -> Result<FunctionInstance, CallError> {
        let function = self
            .functions
            .get(index as usize)
            .ok_or_else(|| CallError::Internal(format!("{} has no function number {index}", self.name)))?;
        let exports =
            self.exports.as_ref().ok_or_else(|| CallError::Internal(format!("{} offers no functions", self.name)))?;
        let name = function.name.clone();
        if control.inline
            && exports.may_be_made_ahead()
            && let Some((mut store, instance)) = ahead::take(runtime, self)
        {
            // The call's own cancel flag, budgets and inline limit; the epoch deadline from now.
            store.data_mut().arm(control.cancel.clone());
            store.data_mut().control(control);
            store.data_mut().models.open(models);
            store.set_epoch_deadline(1);
            return Ok(FunctionInstance::new(name, index, store, instance, exports.indices()));
        }
        let mut store = runtime.store(&self.name, None);
        store.data_mut().control(control);
        let instance = match enter(&mut store, &function.name, |store| exports.instantiate(store)) {
            // Slots this thread keeps for later calls give way to this one.
            Err(CallError::PoolExhausted { .. }) if ahead::release() => {
                enter(&mut store, &function.name, |store| exports.instantiate(store))?
            }
            made => made?,
        };
        store.data_mut().models.open(models);
        Ok(FunctionInstance::new(name, index, store, instance, exports.indices()))
    }
}

impl ahead::MakeAhead for Guest {
    /// A fresh instance for a later inline call, made under an inline call's limits; `None`
    /// when it cannot be made now. A guest whose instantiation runs code that cannot run inline
    /// (it traps, waits, or takes long again and again) is never made ahead again.
    fn make_ahead(&self, runtime: &Runtime) -> Option<(Store<CallState>, Instance)> {
        let exports = self.exports.as_ref().filter(|e| e.may_be_made_ahead())?;
        let mut store = runtime.store(&self.name, None);
        store.data_mut().control(&CallControl { cancel: CancelFlag::default(), inline: true });
        let made = unreported(|| enter(&mut store, &self.name, |store| exports.instantiate(store)));
        match made {
            Ok(Ok(instance)) => {
                exports.made_ahead(true);
                Some((store, instance))
            }
            // A busy pool says nothing about the guest: tried again at the next idle moment.
            Ok(Err(CallError::PoolExhausted { .. })) => None,
            // Slow this time (a busy machine can make it so): tried again, a few times.
            Ok(Err(CallError::OutgrewInline)) => {
                exports.made_ahead(false);
                None
            }
            _ => {
                exports.refuse_ahead();
                None
            }
        }
    }
}

/// Checks the functions a guest declares: not too many, each by the rules, no name twice.
fn check_declarations(path: &Path, functions: &[FunctionDef]) -> Result<(), LoadError> {
    let declaration = |reason| LoadError::Declaration { path: path.to_owned(), reason };
    if functions.len() > MAX_FUNCTIONS {
        return Err(declaration(format!("declares {} functions, more than {MAX_FUNCTIONS}", functions.len())));
    }
    for (i, function) in functions.iter().enumerate() {
        function.validate().map_err(declaration)?;
        if functions[..i].iter().any(|f| f.name == function.name) {
            return Err(declaration(format!("declares {} twice", function.name)));
        }
    }
    Ok(())
}
