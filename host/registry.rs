//! The set of functions being served: their stable ids, and the table from id to implementation.
//!
//! A function's id is a hash of its name, so it survives restarts, reloads and moving the function
//! to another file, and every replica behind a load balancer agrees on it — which matters because
//! Qlik learns ids once (at its own start) and keeps calling them.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::CallError;
use crate::module::{FunctionDef, Module};
use crate::native::NativeFunction;
use crate::pb;

/// The stable id of the function called `name`: FNV-1a (32 bit) of its UTF-8 bytes, with the sign
/// bit cleared so the id is a non-negative `int32`.
pub fn function_id(name: &str) -> i32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    (hash & 0x7fff_ffff) as i32
}

/// What implements a function.
#[derive(Clone)]
pub enum Source {
    /// Function number `index` of a component.
    Wasm {
        /// The component.
        module: Arc<Module>,
        /// The function's position in the component's `describe` list.
        index: u32,
    },
    /// Rust code inside the host.
    Native(Arc<dyn NativeFunction>),
}

/// One servable function.
pub struct Entry {
    /// Its id on the wire.
    pub id: i32,
    /// What implements it.
    pub source: Source,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("name", &self.def().name)
            .field("origin", &self.origin())
            .finish()
    }
}

impl Entry {
    /// Its declaration.
    pub fn def(&self) -> &FunctionDef {
        match &self.source {
            Source::Wasm { module, index } => &module.functions[*index as usize],
            Source::Native(function) => function.def(),
        }
    }

    /// The component implementing it, unless it is native.
    pub fn module(&self) -> Option<&Arc<Module>> {
        match &self.source {
            Source::Wasm { module, .. } => Some(module),
            Source::Native(_) => None,
        }
    }

    /// Where it comes from, for people: the component's path, or "native".
    pub fn origin(&self) -> String {
        self.module().map_or_else(|| "native".to_owned(), |m| m.path.display().to_string())
    }
}

/// A consistent snapshot of every function served. Calls hold the snapshot they started with,
/// so a reload never changes a call half-way.
#[derive(Debug, Default)]
pub struct Registry {
    by_id: HashMap<i32, Arc<Entry>>,
    modules: Vec<Arc<Module>>,
    /// Names of functions served earlier and gone now, so their calls can be told what vanished.
    former: HashMap<i32, String>,
}

/// The registry currently served, swapped atomically when the folder changes.
pub type SharedRegistry = Arc<ArcSwap<Registry>>;

impl Registry {
    /// Serves the functions of `modules`. Where two functions share an id (the same name, or a hash
    /// collision), the one in the earlier module wins and the other is refused with an error
    /// naming both files: a function is never silently shadowed.
    pub fn new(modules: Vec<Arc<Module>>) -> Self {
        Self::with_native(Vec::new(), modules)
    }

    /// Serves `natives` and the functions of `modules`; natives come first. A native function
    /// whose declaration breaks the rules is refused with an error.
    pub fn with_native(natives: Vec<Arc<dyn NativeFunction>>, modules: Vec<Arc<Module>>) -> Self {
        let natives = natives.into_iter().filter(|f| match f.def().validate() {
            Ok(()) => true,
            Err(reason) => {
                tracing::error!("native function refused: {reason}");
                false
            }
        });
        let sources = natives.map(Source::Native).chain(modules.iter().flat_map(|module| {
            (0..module.functions.len()).map(|index| Source::Wasm { module: module.clone(), index: index as u32 })
        }));
        let mut by_id: HashMap<i32, Arc<Entry>> = HashMap::new();
        for source in sources {
            let entry = Entry { id: 0, source };
            let id = function_id(&entry.def().name);
            if let Some(kept) = by_id.get(&id) {
                tracing::error!(
                    "function {} in {} is refused: its id {id} is taken by {} in {}",
                    entry.def().name,
                    entry.origin(),
                    kept.def().name,
                    kept.origin()
                );
                continue;
            }
            by_id.insert(id, Arc::new(Entry { id, ..entry }));
        }
        Self { by_id, modules, former: HashMap::new() }
    }

    /// Like [`Registry::new`], remembering the names of `previous`'s functions that are gone.
    pub fn succeeding(previous: &Registry, modules: Vec<Arc<Module>>) -> Self {
        let mut next = Self::new(modules);
        let gone = previous.by_id.iter().map(|(&id, e)| (id, e.def().name.clone()));
        next.former =
            previous.former.clone().into_iter().chain(gone).filter(|(id, _)| !next.by_id.contains_key(id)).collect();
        next
    }

    /// The name of a function this registry no longer serves but an earlier one did.
    pub fn former_name(&self, id: i32) -> Option<&str> {
        self.former.get(&id).map(String::as_str)
    }

    /// The function with id `id`.
    pub fn get(&self, id: i32) -> Option<&Arc<Entry>> {
        self.by_id.get(&id)
    }

    /// The modules served, in precedence order.
    pub fn modules(&self) -> &[Arc<Module>] {
        &self.modules
    }

    /// The modules that are script engines, in precedence order.
    pub fn script_engines(&self) -> impl Iterator<Item = &Arc<Module>> {
        self.modules.iter().filter(|m| m.scripts.is_some())
    }

    /// The engine that runs a script asking for `marker` (its first line's `#!language`), else
    /// the engine of language `default`, else the first engine. The error says what is loaded.
    pub fn script_engine(&self, marker: Option<&str>, default: Option<&str>) -> Result<&Arc<Module>, CallError> {
        fn language(m: &Arc<Module>) -> Option<&str> {
            m.scripts.as_ref().map(|s| s.language.as_str())
        }
        let wanted = marker.or(default);
        let found = match wanted {
            Some(wanted) => self.script_engines().find(|m| language(m) == Some(wanted)),
            None => self.script_engines().next(),
        };
        found.ok_or_else(|| {
            let loaded: Vec<&str> = self.script_engines().filter_map(|m| language(m)).collect();
            let loaded = if loaded.is_empty() { "none".to_owned() } else { loaded.join(", ") };
            match (marker, wanted) {
                (Some(marker), _) => CallError::NoScriptEngine(format!(
                    "the script asks for #!{marker}, but no {marker} script engine is loaded (loaded: {loaded})"
                )),
                (None, Some(default)) => CallError::NoScriptEngine(format!(
                    "the default script language {default} has no engine loaded (loaded: {loaded}); \
                     start the script with #!<language> to choose another"
                )),
                (None, None) => CallError::NoScriptEngine("no script engine is loaded".to_owned()),
            }
        })
    }

    /// Every function served, ordered by name.
    pub fn entries(&self) -> Vec<&Arc<Entry>> {
        let mut entries: Vec<_> = self.by_id.values().collect();
        entries.sort_by(|a, b| a.def().name.cmp(&b.def().name));
        entries
    }

    /// The function definitions Qlik receives from GetCapabilities.
    pub fn function_definitions(&self) -> Vec<pb::FunctionDefinition> {
        self.entries()
            .into_iter()
            .map(|entry| {
                let def = entry.def();
                pb::FunctionDefinition {
                    name: def.name.clone(),
                    function_type: def.function_type as i32,
                    return_type: def.return_type.to_pb() as i32,
                    params: def
                        .params
                        .iter()
                        .map(|(name, t)| pb::Parameter { data_type: t.to_pb() as i32, name: name.clone() })
                        .collect(),
                    function_id: entry.id,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fnv1a_of_the_name_and_non_negative() {
        // FNV-1a test vectors: "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
        assert_eq!(function_id(""), 0x011c_9dc5);
        assert_eq!(function_id("a"), 0x640c_292c);
        assert_eq!(function_id("foobar"), 0x3f9c_f968);
        assert!(["SumOfRows", "HelloWorld", "MaxOfColumns_2"].iter().all(|n| function_id(n) >= 0));
        assert_ne!(function_id("SumOfRows"), function_id("SumOfRow"));
    }
}
