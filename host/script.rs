//! Qlik's script functions (`EvaluateScript`): the script a request carries, the script engines
//! that run it, and one evaluation from request messages to answer messages.
//!
//! A script engine is a component exporting `qlik:sse/scripts`. Like a function call, every
//! evaluation runs in a fresh instance of it, in a store of its own: nothing one script does —
//! data it keeps, modules or builtins it changes, output it prints — is seen by any later script,
//! whichever app or user sends it. Instantiating from the pre-linked component is cheap (the
//! interpreter's start-up was done when the component was built, and its memory image is mapped
//! copy-on-write).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::bindings::qlik::sse::types as wit;
use crate::bindings::script_engine::exports::qlik::sse::scripts::Script as ScriptHeader;
use crate::bindings::script_engine::{ScriptEngine as Bindings, ScriptEnginePre};
use crate::codec::{self, EncodeError, EncodedRows, MAX_RESPONSE_BYTES};
use crate::columns::{Batch, DataType};
use crate::engine::{CallState, CancelFlag, Engine, guarded};
use crate::error::{CallError, LoadError};
use crate::invoke::CallStats;
use crate::pb;

/// The name scripts go by in logs and messages (Qlik does not say which script function it was).
const LABEL: &str = "script";

/// The script of one `EvaluateScript` call, from its `ScriptRequestHeader`.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    /// The text as written in the expression.
    pub text: String,
    /// Parameter names and types, in order.
    pub params: Vec<(String, DataType)>,
    /// Scalar, aggregation or tensor.
    pub function_type: pb::FunctionType,
    /// The type of every answer column.
    pub return_type: DataType,
}

impl Script {
    /// Checks Qlik's header: known enum values only.
    pub fn from_header(header: pb::ScriptRequestHeader) -> Result<Self, CallError> {
        let data_type = |value: i32, what: &str| {
            pb::DataType::try_from(value)
                .map(DataType::from_pb)
                .map_err(|_| CallError::BadHeader(format!("{what} has the unknown data type {value}")))
        };
        let function_type = pb::FunctionType::try_from(header.function_type).map_err(|_| {
            CallError::BadHeader(format!("the script has the unknown function type {}", header.function_type))
        })?;
        let params = header
            .params
            .into_iter()
            .map(|p| Ok((p.name.clone(), data_type(p.data_type, &format!("parameter {:?}", p.name))?)))
            .collect::<Result<_, CallError>>()?;
        Ok(Self {
            text: header.script,
            params,
            function_type,
            return_type: data_type(header.return_type, "the script")?,
        })
    }

    /// The language its first line asks for (`#!python` asks for `python`), if any.
    pub fn marker(&self) -> Option<String> {
        let first = self.text.trim_start().lines().next()?;
        let language = first.strip_prefix("#!")?.trim();
        (!language.is_empty()).then(|| language.to_ascii_lowercase())
    }

    /// How many rows the whole answer must have for `rows_in` input rows; `None` for a script
    /// without parameters, which answers whatever it evaluates to.
    fn expected_rows(&self, rows_in: usize) -> Option<usize> {
        match self.function_type {
            pb::FunctionType::Aggregation => Some(1),
            _ if self.params.is_empty() => None,
            _ => Some(rows_in),
        }
    }
}

/// Fresh instances kept ready per engine: a call takes one, and one is made to replace it off the
/// call's path. None is ever used twice.
const READY: usize = 2;

/// A fresh instance of a script engine in its own store, never used by any call.
struct Fresh {
    store: Store<CallState>,
    bindings: Bindings,
}

/// A loaded script engine: its language, the pre-linked component every evaluation
/// instantiates afresh, and a few such instances made ahead of time.
pub struct ScriptEngine {
    /// The language it runs, lower case.
    pub language: String,
    shared: Arc<Shared>,
}

/// What the engine and its preparing thread share.
struct Shared {
    engine: Engine,
    module: Arc<str>,
    pre: ScriptEnginePre<CallState>,
    /// Instances made ahead of time, never used.
    ready: Mutex<Vec<Fresh>>,
    /// Stores of finished calls, freed by the preparing thread rather than on a call's path.
    spent: Mutex<Vec<Store<CallState>>>,
    /// Wakes the preparing thread when an instance was taken.
    wanted: Condvar,
}

impl Shared {
    fn instantiate(&self, cancel: Option<CancelFlag>) -> Result<Fresh, CallError> {
        let mut store = self.engine.store(&self.module, cancel);
        let bindings = guarded(&mut store, LABEL, |s| self.pre.instantiate(s))?;
        Ok(Fresh { store, bindings })
    }
}

impl ScriptEngine {
    /// Links the engine exported by a component and asks a first instance for its language.
    pub(crate) fn new(
        engine: &Engine,
        module: &Arc<str>,
        pre: InstancePre<CallState>,
        load_error: impl Fn(String) -> LoadError,
    ) -> Result<Self, LoadError> {
        let pre = ScriptEnginePre::new(pre).map_err(|e| load_error(format!("{e:#}")))?;
        let mut store = engine.store(module, None);
        let what = format!("{module} (language)");
        let bindings = guarded(&mut store, &what, |s| pre.instantiate(s)).map_err(|e| load_error(e.to_string()))?;
        let language = guarded(&mut store, &what, |s| bindings.qlik_sse_scripts().call_language(s))
            .map_err(|e| load_error(e.to_string()))?;
        if language.is_empty()
            || language.len() > 32
            || !language.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(load_error(format!(
                "the script language {language:?} is not a short lower-case name such as \"python\""
            )));
        }
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            module: module.clone(),
            pre,
            ready: Mutex::new(Vec::new()),
            spent: Mutex::new(Vec::new()),
            wanted: Condvar::new(),
        });
        let weak = Arc::downgrade(&shared);
        // The preparing thread ends once the engine is dropped (a reload replaced it).
        std::thread::Builder::new()
            .name(format!("sse-wasm-prepare-{language}"))
            .spawn(move || prepare(&weak))
            .map_err(|e| load_error(format!("cannot start its preparing thread: {e}")))?;
        Ok(Self { language, shared })
    }

    /// A fresh instance for one call: one made ahead of time, or one made now.
    fn fresh(&self, cancel: CancelFlag) -> Result<Fresh, CallError> {
        let prepared = self.shared.ready.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        self.shared.wanted.notify_one();
        match prepared {
            Some(mut fresh) => {
                fresh.store.data_mut().arm(cancel);
                Ok(fresh)
            }
            None => self.shared.instantiate(Some(cancel)),
        }
    }

    /// Hands the store of a finished call to the preparing thread to free.
    fn discard(&self, store: Store<CallState>) {
        self.shared.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(store);
        self.shared.wanted.notify_one();
    }
}

/// Keeps `READY` fresh instances made while the engine lives.
fn prepare(shared: &std::sync::Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else { return };
        let missing = {
            let ready = shared.ready.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Wakes at least once a second to notice the engine is gone.
            let (ready, _) = shared
                .wanted
                .wait_timeout_while(ready, Duration::from_secs(1), |ready| {
                    ready.len() >= READY && shared.spent.lock().is_ok_and(|spent| spent.is_empty())
                })
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            ready.len() < READY
        };
        drop(std::mem::take(&mut *shared.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())));
        if missing {
            match shared.instantiate(None) {
                Ok(fresh) => shared.ready.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(fresh),
                Err(error) => {
                    // Calls instantiate for themselves meanwhile, and report what fails.
                    tracing::warn!("{}: cannot prepare a script engine instance: {error}", shared.module);
                    drop(shared);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Runs `script` on `scripts` (the engine of component `module`): feeds it every request message
/// from `next`, then hands its answer, split into messages, to `send`.
pub fn run<N, S>(
    scripts: &ScriptEngine,
    script: &Script,
    cancel: CancelFlag,
    mut next: N,
    mut send: S,
) -> Result<CallStats, CallError>
where
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    // A fresh instance in a store of its own: its own memory, CPU budget and output budget.
    let Fresh { store: mut own_store, bindings } = scripts.fresh(cancel)?;
    let header = ScriptHeader {
        text: script.text.clone(),
        params: script
            .params
            .iter()
            .map(|(name, t)| wit::Param { name: name.clone(), data_type: (*t).into() })
            .collect(),
        function_type: script.function_type.into(),
        return_type: script.return_type.into(),
    };
    let params: Vec<DataType> = script.params.iter().map(|(_, t)| *t).collect();
    let store = &mut own_store;
    let evaluation = bindings.qlik_sse_scripts().evaluation();
    let handle = guarded(store, LABEL, |s| evaluation.call_constructor(s, &header))?;

    let mut stats = CallStats::default();
    let outcome = (|| {
        while let Some(message) = next()? {
            let batch = codec::decode(&message, &params)
                .map_err(|error| CallError::BadInput { function: LABEL.to_owned(), reason: error.to_string() })?;
            stats.rows_in += batch.rows;
            let input = wit::Batch::try_from(batch)
                .map_err(|reason| CallError::BadInput { function: LABEL.to_owned(), reason })?;
            guarded(store, LABEL, |s| evaluation.call_update(s, handle, &input))?.map_err(script_error)?;
        }
        guarded(store, LABEL, |s| evaluation.call_finish(s, handle))?.map_err(script_error)
    })();
    let answer = outcome.map_err(|error| {
        // A script that ran into the memory cap failed for that, whatever it said.
        store.data().memory_exhausted(LABEL).unwrap_or(error)
    });
    scripts.discard(own_store);
    let answer = answer?;
    let answer = Batch::from(answer);
    check(script, &answer, stats.rows_in)?;
    stats.rows_out = answer.rows;
    codec::encode(&answer, MAX_RESPONSE_BYTES, &mut send).map_err(|error| match error {
        EncodeError::Emit(error) => error,
        EncodeError::OversizedRow(bytes) => CallError::OversizedRow { function: LABEL.to_owned(), bytes },
    })?;
    Ok(stats)
}

fn script_error(message: String) -> CallError {
    CallError::Guest { function: LABEL.to_owned(), message }
}

/// A script's answer must have the rows its function type promises, in columns of its return type.
fn check(script: &Script, answer: &Batch, rows_in: usize) -> Result<(), CallError> {
    let wrong = |message: String| CallError::Guest { function: LABEL.to_owned(), message };
    if answer.columns.is_empty() {
        return Err(wrong("the script answered no columns".to_owned()));
    }
    let types = vec![script.return_type; answer.columns.len()];
    answer.check(&types).map_err(|reason| wrong(format!("the answer does not fit the return type: {reason}")))?;
    if let Some(expected) = script.expected_rows(rows_in)
        && answer.rows != expected
    {
        let function = match script.function_type {
            pb::FunctionType::Aggregation => "an aggregation (ScriptAggr)",
            _ => "a row-wise script (ScriptEval)",
        };
        return Err(wrong(format!(
            "the script answered {} rows for {rows_in} input rows; {function} answers {expected}",
            answer.rows
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> Script {
        Script {
            text: text.to_owned(),
            params: Vec::new(),
            function_type: pb::FunctionType::Scalar,
            return_type: DataType::Numeric,
        }
    }

    #[test]
    fn the_first_line_names_the_language() {
        assert_eq!(script("#!python\nsum(args[0])").marker().as_deref(), Some("python"));
        assert_eq!(script("  #! JavaScript \n1").marker().as_deref(), Some("javascript"));
        assert_eq!(script("sum(args[0])").marker(), None);
        assert_eq!(script("#!\n1").marker(), None);
        assert_eq!(script("").marker(), None);
    }

    #[test]
    fn unknown_enum_values_in_the_header_are_refused() {
        let header = pb::ScriptRequestHeader { script: "1".into(), function_type: 7, ..Default::default() };
        assert!(Script::from_header(header).unwrap_err().to_string().contains("function type 7"));
        let header = pb::ScriptRequestHeader { script: "1".into(), return_type: 9, ..Default::default() };
        assert!(Script::from_header(header).unwrap_err().to_string().contains("data type 9"));
    }
}
