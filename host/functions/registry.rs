//! The set of functions being served: their stable ids, and the table from id to implementation.
//!
//! A function's id is a hash of its name, so it survives restarts, reloads and moving the function
//! to another file, and every replica behind a load balancer agrees on it — which matters because
//! Qlik learns ids once (at its own start) and keeps calling them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use arc_swap::ArcSwap;

use crate::error::CallError;
#[cfg(feature = "native")]
use crate::functions::native::NativeFunction;
use crate::model::FunctionDef;
use crate::wasm::Guest;

/// The languages that take scripts without a `#!` first line when no default language is set,
/// in preference order: both of Qlik's full-script examples give their scripts numpy, which the
/// data-science engine (`pandas`) has and the plain Python engine has not.
pub const UNMARKED: [&str; 2] = ["pandas", "python"];

/// The stable id of the function called `name`: FNV-1a (32 bit) of its UTF-8 bytes, with the sign
/// bit cleared so the id is a non-negative `int32`.
pub fn function_id(name: &str) -> i32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    (hash & 0x7fff_ffff) as i32
}

/// What implements a function.
#[derive(Clone)]
pub enum Implementation {
    /// Function number `index` of a component.
    Wasm {
        /// The component.
        guest: Arc<Guest>,
        /// The function's position in the component's `describe` list.
        index: u32,
    },
    /// Rust code inside the host.
    #[cfg(feature = "native")]
    Native(Arc<dyn NativeFunction>),
}

/// One servable function.
pub struct Entry {
    /// Its id on the wire.
    pub id: i32,
    /// What implements it.
    pub implementation: Implementation,
    /// How many of its next calls run on call threads because a small call of it lately ran too
    /// long to stay on the thread that took the request in.
    pub outgrew_inline: Arc<AtomicU32>,
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
        match &self.implementation {
            Implementation::Wasm { guest, index } => &guest.functions[*index as usize],
            #[cfg(feature = "native")]
            Implementation::Native(function) => function.def(),
        }
    }

    /// The component implementing it, unless it is native.
    pub fn guest(&self) -> Option<&Arc<Guest>> {
        match &self.implementation {
            Implementation::Wasm { guest, .. } => Some(guest),
            #[cfg(feature = "native")]
            Implementation::Native(_) => None,
        }
    }

    /// Where it comes from, for people: the component's path, or "native".
    pub fn origin(&self) -> String {
        self.guest().map_or_else(|| "native".to_owned(), |m| m.path.display().to_string())
    }
}

/// A consistent snapshot of every function served. Calls hold the snapshot they started with,
/// so a reload never changes a call half-way.
#[derive(Debug, Default)]
pub struct Registry {
    by_id: HashMap<i32, Arc<Entry>>,
    guests: Vec<Arc<Guest>>,
    /// Names of functions served earlier and gone now, so their calls can be told what vanished.
    former: HashMap<i32, String>,
}

/// The registry currently served, swapped atomically when the folder changes.
pub type SharedRegistry = Arc<ArcSwap<Registry>>;

impl Registry {
    /// Serves the functions of `guests`. Where two functions share an id (the same name, or a hash
    /// collision), the one in the earlier guest wins and the other is refused with an error
    /// naming both files: a function is never silently shadowed.
    pub fn new(guests: Vec<Arc<Guest>>) -> Self {
        let implementations = guests.iter().flat_map(|guest| {
            (0..guest.functions.len()).map(|index| Implementation::Wasm { guest: guest.clone(), index: index as u32 })
        });
        Self { by_id: by_id(implementations), guests, former: HashMap::new() }
    }

    /// Serves `natives` and the functions of `guests`; natives come first. A native function
    /// whose declaration breaks the rules is refused with an error.
    #[cfg(feature = "native")]
    pub fn with_native(natives: Vec<Arc<dyn NativeFunction>>, guests: Vec<Arc<Guest>>) -> Self {
        let natives = natives.into_iter().filter(|f| match f.def().validate() {
            Ok(()) => true,
            Err(reason) => {
                tracing::error!("native function refused: {reason}");
                false
            }
        });
        let wasm = Self::new(guests);
        let implementations = natives
            .map(Implementation::Native)
            .chain(wasm.entries().into_iter().map(|e| e.implementation.clone()).collect::<Vec<_>>());
        Self { by_id: by_id(implementations), ..wasm }
    }

    /// Like [`Registry::new`], remembering the names of `previous`'s functions that are gone.
    pub fn succeeding(previous: &Registry, guests: Vec<Arc<Guest>>) -> Self {
        let mut next = Self::new(guests);
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

    /// The guests served, in precedence order.
    pub fn guests(&self) -> &[Arc<Guest>] {
        &self.guests
    }

    /// The guests that are script engines, in precedence order.
    pub fn script_engines(&self) -> impl Iterator<Item = &Arc<Guest>> {
        self.guests.iter().filter(|g| g.scripts.is_some())
    }

    /// The languages of the script engines served, in precedence order.
    pub fn script_languages(&self) -> Vec<&str> {
        self.script_engines().filter_map(|g| g.scripts.as_ref().map(|s| s.language.as_str())).collect()
    }

    /// The engine that runs a script asking for `marker` (its first line's `#!language`), else
    /// the engine of language `default`, else the first engine of [`UNMARKED`]'s languages that
    /// is loaded, else the first engine. The error says what is loaded.
    pub fn script_engine(&self, marker: Option<&str>, default: Option<&str>) -> Result<&Arc<Guest>, CallError> {
        fn language(g: &Arc<Guest>) -> Option<&str> {
            g.scripts.as_ref().map(|s| s.language.as_str())
        }
        let wanted = marker.or(default);
        let found = match wanted {
            Some(wanted) => self.script_engines().find(|g| language(g) == Some(wanted)),
            None => UNMARKED
                .iter()
                .find_map(|&preferred| self.script_engines().find(|g| language(g) == Some(preferred)))
                .or_else(|| self.script_engines().next()),
        };
        found.ok_or_else(|| {
            let loaded = self.script_languages();
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
}

/// The table from id to function; of two functions with one id, the first keeps it.
fn by_id(implementations: impl IntoIterator<Item = Implementation>) -> HashMap<i32, Arc<Entry>> {
    let mut by_id: HashMap<i32, Arc<Entry>> = HashMap::new();
    for implementation in implementations {
        let entry = Entry { id: 0, implementation, outgrew_inline: Arc::default() };
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
    by_id
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
