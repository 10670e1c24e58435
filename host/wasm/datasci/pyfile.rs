//! Python function files: a `.py` file in the functions folder whose functions, declared with
//! the Python SDK's decorators (`@scalar`, `@tensor`, `@aggregation`), are served like a
//! component's, run by the data-science engine — no componentize step.
//!
//! Loading runs the file in a fresh instance of the engine and reads what it declared. Every call
//! is a fresh instance (made ahead by the engine's preparing thread when one is ready, never run)
//! that runs the file again (from the code its load compiled: no call compiles it), then the
//! function: once per batch for a scalar or tensor function, once over every row of the call for
//! an aggregation. Nothing one call does
//! (module state, globals, imports it changes) is seen by another, and every call runs under the
//! same sandbox as any guest (CPU deadline, memory cap, cancellation, no files or network).

use std::path::Path;
use std::sync::Arc;

use wasmtime::{Instance, Store};

use crate::error::{CallError, LoadError};
use crate::model::{Batch, Column, DataType, FunctionDef, FunctionType, Mode, Script, TableDef};
use crate::wasm::models::AppModels;

use super::dictionary::Dictionary;
use super::engine::{DataSci, KeptRows, turn};
use super::frame::{Reader, data_type, read_answer};
use super::input::{Input, InputFrame};
use super::runtime::{DataSciState, Outcome};
use crate::wasm::component::instance::Answer;
use crate::wasm::runtime::sandbox::CallControl;

/// What the driver runs in a fresh instance to run the file and declare its functions.
const LOAD: &[u8] = b"_sse_load_file()";
/// What the driver runs in a call's fresh instance to run the file from the code its load
/// compiled.
const RUN: &[u8] = b"_sse_run_file()";
/// What the driver runs in a call's fresh instance when the load's code was not kept: the file
/// is compiled and run, and neither its code nor its declarations are sent again.
const RUN_SOURCE: &[u8] = b"_sse_load_file(False)";
/// Compiled code larger than this is not kept: calls compile the file instead.
const MAX_CODE: usize = 16 << 20;
/// What the driver runs for each batch of a call.
const CALL: &[u8] = b"_sse_call_file()";

/// True for a Python function file's name (`*.py`).
pub fn is_python_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py" || (cfg!(windows) && e.eq_ignore_ascii_case("py")))
}

/// A loaded function file: the engine that runs it, and what each of its instances is given.
pub struct PyFile {
    engine: Arc<DataSci>,
    /// The file's name, then its source: what `_sse_load_file` reads.
    frame: Arc<[u8]>,
    /// The file's name, its code as its load compiled it, then its source: what `_sse_run_file`
    /// reads (calls run the source, `RUN_SOURCE`, when the code is over `MAX_CODE`).
    compiled: Option<Arc<[u8]>>,
}

impl PyFile {
    /// Runs `source`, the file `path`, in a fresh instance of `engine`; its declarations.
    pub(crate) fn load(
        engine: &Arc<DataSci>,
        path: &Path,
        source: &[u8],
    ) -> Result<(Self, Vec<FunctionDef>), LoadError> {
        let declaration = |reason: String| LoadError::Declaration { path: path.to_owned(), reason };
        std::str::from_utf8(source).map_err(|e| declaration(format!("the file is not UTF-8 text ({e})")))?;
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut frame = Vec::with_capacity(4 + name.len() + source.len());
        frame.extend_from_slice(&(name.len() as u32).to_le_bytes());
        frame.extend_from_slice(name.as_bytes());
        frame.extend_from_slice(source);
        let mut file = Self { engine: engine.clone(), frame: frame.into(), compiled: None };
        let label = format!("{name} (load)");
        let describe = |reason| LoadError::Describe { path: path.to_owned(), reason };
        let (mut store, _) = file.run(&label, None).map_err(describe)?;
        let state = store.data_mut();
        if let Some(Outcome::Error(message)) = state.door.outcome.take() {
            return Err(declaration(message));
        }
        let declared = state.door.functions.take().ok_or_else(|| declaration("the file declared nothing".into()))?;
        if let Some(code) = state.door.code.take().filter(|code| code.len() <= MAX_CODE) {
            // The load frame's name (its length first), then the code, then the source.
            let named = &file.frame[..4 + name.len()];
            let mut compiled = Vec::with_capacity(named.len() + 4 + code.len() + source.len());
            compiled.extend_from_slice(named);
            compiled.extend_from_slice(&(code.len() as u32).to_le_bytes());
            compiled.extend_from_slice(&code);
            compiled.extend_from_slice(source);
            file.compiled = Some(compiled.into());
        }
        let functions =
            read_declarations(&declared).map_err(|reason| declaration(format!("its declarations: {reason}")))?;
        if functions.is_empty() {
            return Err(declaration(
                "it declares no function (decorate them with sse_guest's @scalar, @tensor or @aggregation)".into(),
            ));
        }
        Ok((file, functions))
    }

    /// A fresh instance, which has run the file, for `label`; `control` stops a call's (made
    /// ahead, when the engine has one ready).
    fn run(&self, label: &str, control: Option<&CallControl>) -> Result<(Store<DataSciState>, Instance), CallError> {
        let (mut store, instance, entry) = match control {
            Some(control) => {
                let (frame, entry) =
                    self.compiled.as_ref().map_or((&self.frame, RUN_SOURCE), |compiled| (compiled, RUN));
                let (mut store, instance) = self.engine.fresh(control.cancel.clone(), Input::Bytes(frame.clone()))?;
                store.data_mut().call.control(control);
                (store, instance, entry)
            }
            None => {
                let (store, instance) = self.engine.instance(label, None, Some(Input::Bytes(self.frame.clone())))?;
                (store, instance, LOAD)
            }
        };
        turn(label, &mut store, &instance, entry)?;
        Ok((store, instance))
    }

    /// One call of `def`, a function of this file, that `control` stops; `models`, the calling
    /// app's models if the host keeps a store.
    pub(crate) fn call<'a>(
        &'a self,
        def: &'a FunctionDef,
        control: CallControl,
        models: Option<AppModels>,
    ) -> PyCall<'a> {
        let kept = KeptRows::new(def.param_types(), self.engine.max_input_bytes(), &def.name);
        PyCall { file: self, def, control, models, instance: None, kept }
    }
}

/// One call of a function file's function: its instance, made at the first batch, and for an
/// aggregation the rows so far.
pub(crate) struct PyCall<'a> {
    file: &'a PyFile,
    def: &'a FunctionDef,
    control: CallControl,
    models: Option<AppModels>,
    instance: Option<(Store<DataSciState>, Instance)>,
    kept: KeptRows,
}

impl Drop for PyCall<'_> {
    fn drop(&mut self) {
        if let Some((store, _)) = self.instance.take() {
            self.file.engine.spent(store);
        }
    }
}

impl PyCall<'_> {
    /// Runs the function over `rows` rows of `columns` in the call's instance.
    fn run(&mut self, rows: usize, columns: Vec<Column>, coded: Vec<Option<Dictionary>>) -> Answer {
        let def = self.def;
        let name = def.name.as_str();
        let script = Script {
            text: def.name.clone(),
            params: def.params.clone(),
            function_type: def.function_type,
            return_type: def.return_type,
        };
        let input = InputFrame::new(&script, rows, columns, coded).map_err(|error| match error {
            CallError::BadInput { reason, .. } => CallError::bad_input(name, reason),
            other => other,
        })?;
        self.start()?;
        let (store, instance) = self.instance.as_mut().expect("made above");
        let state = store.data_mut();
        state.door.functions = None;
        state.door.model_error = None;
        if let Some(Outcome::Error(message)) = state.door.outcome.take() {
            // The file itself failed this time (it did not when it was loaded).
            return Ok(Err(message));
        }
        state.door.input = Some(Input::Rows(input));
        turn(name, store, instance, CALL)?;
        let state = store.data_mut();
        let memory = state.call.memory_exhausted(name);
        match state.door.outcome.take() {
            Some(Outcome::Answer(frame)) => {
                read_answer(&frame).map(Ok).map_err(|reason| CallError::BadOutput { function: name.to_owned(), reason })
            }
            Some(Outcome::Error(message)) => match (memory, state.door.model_error.take()) {
                (Some(exhausted), _) => Err(exhausted),
                // The function failed on the store's refusal: the refusal's own code.
                (None, Some(error)) => Err(CallError::Models { function: name.to_owned(), error }),
                (None, None) => Ok(Err(message)),
            },
            _ => Err(memory.unwrap_or_else(|| CallError::Trap {
                function: name.to_owned(),
                trap: format!("the engine ended without an answer: {}", state.call.last_words()),
            })),
        }
    }
}

impl PyCall<'_> {
    /// Makes the call's instance, which has run the file, unless it has one: a per-call
    /// function's as its call starts, so that running the file overlaps the rows' arrival.
    pub(crate) fn start(&mut self) -> Result<(), CallError> {
        if self.instance.is_none() {
            let (mut store, instance) = self.file.run(&self.def.name, Some(&self.control))?;
            store.data_mut().door.models = self.models.clone();
            self.instance = Some((store, instance));
        }
        Ok(())
    }

    /// A scalar or tensor function's answer to one batch.
    pub(crate) fn call(&mut self, input: Batch) -> Answer {
        self.run(input.rows, input.columns, Vec::new())
    }

    /// The rows a per-call function (an aggregation, a table) keeps for [`PyCall::finish`], to
    /// decode the next request message onto.
    pub(crate) fn kept(&mut self) -> &mut KeptRows {
        &mut self.kept
    }

    /// A per-call function's answer while it keeps rows: none yet.
    pub(crate) fn nothing_yet(&self) -> Batch {
        let columns = self.def.result_types().into_iter().map(|t| Column::with_capacity(t, 0)).collect();
        Batch { rows: 0, columns }
    }

    /// A per-call function's answer, over every row kept.
    pub(crate) fn finish(&mut self) -> Answer {
        let (rows, columns, coded) = self.kept.take()?;
        self.run(rows, columns, coded)
    }
}

/// The declarations the driver read from a file: their count, then each one's name,
/// description, function type (3: a tensor per call), return type, cacheable flag, parameters
/// (type, name), and its table's field count (0: none), then the table's name and fields.
fn read_declarations(frame: &[u8]) -> Result<Vec<FunctionDef>, String> {
    let mut r = Reader { bytes: frame, at: 0 };
    let count = r.u32()? as usize;
    if count > crate::model::MAX_FUNCTIONS {
        return Err(format!("{count} functions, more than {}", crate::model::MAX_FUNCTIONS));
    }
    let kind = |t: u32| data_type(t).ok_or_else(|| format!("the data type {t}"));
    let mut functions = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.text()?;
        let description = r.text()?;
        let (function_type, mode) = match r.u32()? {
            0 => (FunctionType::Scalar, Mode::PerBatch),
            1 => (FunctionType::Aggregation, Mode::PerCall),
            2 => (FunctionType::Tensor, Mode::PerBatch),
            3 => (FunctionType::Tensor, Mode::PerCall),
            t => return Err(format!("{name} has the function type {t}")),
        };
        let return_type = kind(r.u32()?)?;
        let cacheable = r.u32()? != 0;
        let count = r.u32()? as usize;
        if count > frame.len() {
            return Err(format!("{name} claims {count} parameters"));
        }
        let params = (0..count)
            .map(|_| {
                let t = kind(r.u32()?)?;
                Ok((r.text()?, t))
            })
            .collect::<Result<Vec<(String, DataType)>, String>>()?;
        let fields = r.u32()? as usize;
        let table = if fields == 0 {
            None
        } else if fields > frame.len() || mode != Mode::PerCall || function_type != FunctionType::Tensor {
            return Err(format!("{name} claims a table of {fields} fields"));
        } else {
            let table = r.text()?;
            let fields = (0..fields)
                .map(|_| {
                    let t = kind(r.u32()?)?;
                    Ok((r.text()?, t))
                })
                .collect::<Result<Vec<(String, DataType)>, String>>()?;
            Some(TableDef { name: table, fields })
        };
        functions.push(FunctionDef { name, description, function_type, return_type, params, mode, table, cacheable });
    }
    if r.at != frame.len() {
        return Err("bytes after the last declaration".to_owned());
    }
    Ok(functions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_read_back_and_every_cut_is_refused() {
        let text = |f: &mut Vec<u8>, s: &str| {
            f.extend_from_slice(&(s.len() as u32).to_le_bytes());
            f.extend_from_slice(s.as_bytes());
        };
        let mut frame = 3u32.to_le_bytes().to_vec();
        text(&mut frame, "Multiply");
        text(&mut frame, "Multiplies.");
        for v in [0u32, 1, 1, 2] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        for p in ["a", "b"] {
            frame.extend_from_slice(&1u32.to_le_bytes());
            text(&mut frame, p);
        }
        frame.extend_from_slice(&0u32.to_le_bytes());
        text(&mut frame, "Mean");
        text(&mut frame, "");
        for v in [1u32, 2, 0, 1, 2] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        text(&mut frame, "d");
        frame.extend_from_slice(&0u32.to_le_bytes());
        text(&mut frame, "Summary");
        text(&mut frame, "");
        for v in [3u32, 0, 1, 0, 2] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        text(&mut frame, "Summary");
        for (t, field) in [(0u32, "Name"), (1, "Value")] {
            frame.extend_from_slice(&t.to_le_bytes());
            text(&mut frame, field);
        }
        let functions = read_declarations(&frame).expect("reads");
        assert_eq!(functions.len(), 3);
        assert_eq!(functions[0].name, "Multiply");
        assert_eq!(functions[0].description, "Multiplies.");
        assert_eq!((functions[0].function_type, functions[0].mode), (FunctionType::Scalar, Mode::PerBatch));
        assert_eq!(functions[0].params, [("a".to_owned(), DataType::Numeric), ("b".to_owned(), DataType::Numeric)]);
        assert!(functions[0].cacheable);
        assert_eq!((functions[1].function_type, functions[1].mode), (FunctionType::Aggregation, Mode::PerCall));
        assert_eq!((functions[1].return_type, functions[1].cacheable), (DataType::Dual, false));
        assert_eq!(functions[1].params, [("d".to_owned(), DataType::Dual)]);
        assert_eq!(functions[0].table, None);
        assert_eq!((functions[2].function_type, functions[2].mode), (FunctionType::Tensor, Mode::PerCall));
        let fields = [("Name".to_owned(), DataType::Text), ("Value".to_owned(), DataType::Numeric)];
        assert_eq!(functions[2].table, Some(TableDef { name: "Summary".to_owned(), fields: fields.to_vec() }));
        for cut in 0..frame.len() {
            assert!(read_declarations(&frame[..cut]).is_err(), "cut at {cut}");
        }
        frame.push(0);
        assert!(read_declarations(&frame).is_err(), "a byte too many");
    }

    #[test]
    fn python_files_are_told_by_their_extension() {
        assert!(is_python_file(Path::new("/f/stats.py")));
        for no in ["/f/stats.pyc", "/f/stats.wasm", "/f/py", "/f/stats.py~"] {
            assert!(!is_python_file(Path::new(no)), "{no}");
        }
    }
}
