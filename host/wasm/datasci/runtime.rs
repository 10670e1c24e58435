//! The data-science engine's runtime: its wasmtime engine settings, the data of its stores
//! (the sandbox, WASI preview 1 without authority, the door) and the door itself, `host.call`,
//! through which the driver asks for its input and answers.

use std::sync::{Arc, Mutex};

use wasmtime::{Caller, Engine, Linker, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::error::ModelError;
use crate::wasm::models::{AppModels, no_store};
use crate::wasm::runtime::guest_log::GuestOutput;
use crate::wasm::runtime::sandbox::{CallState, CancelFlag, Sandboxed, enforce};
use crate::wasm::runtime::{Limits, Runtime, reset_written_pages};

use super::input::Input;
use super::sorting::SortRequest;

/// The door's answers: success, no host bound, the host failed.
pub(crate) const DOOR_OK: i32 = 0;
pub(crate) const DOOR_FAULT: i32 = -2;

/// What the driver said through the door during one entry.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The answer frame.
    Answer(Vec<u8>),
    /// The script failed: the exception and its line.
    Error(String),
    /// A statements script did not assign `qResult`.
    NoResult,
}

/// The data crossing the door of one instance.
#[derive(Default)]
pub(crate) struct Door {
    /// The input, until the driver takes it.
    pub(crate) input: Option<Input>,
    /// The language the driver named.
    pub(crate) language: Option<String>,
    /// The declarations of a Python function file the driver ran.
    pub(crate) functions: Option<Vec<u8>>,
    /// The compiled code of that file (marshalled), for its calls to run without compiling it.
    pub(crate) code: Option<Vec<u8>>,
    /// The TableDescription the script filled.
    pub(crate) table: Option<Vec<u8>>,
    /// How the script ended.
    pub(crate) outcome: Option<Outcome>,
    /// What was wrong with a request the driver made, for the error message.
    pub(crate) fault: Option<String>,
    /// The calling app's models, when the host keeps a model store.
    pub(crate) models: Option<AppModels>,
    /// The model store's last refusal: the call's error if the function then fails.
    pub(crate) model_error: Option<ModelError>,
}

/// The data of a data-science store: the sandbox, WASI preview 1 without authority, the door.
pub(crate) struct DataSciState {
    pub(crate) call: CallState,
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) door: Door,
}

impl Sandboxed for DataSciState {
    fn call_state(&self) -> &CallState {
        &self.call
    }
    fn call_state_mut(&mut self) -> &mut CallState {
        &mut self.call
    }
}

/// The engine and linker every data-science module runs with.
pub(crate) struct DataSciRuntime {
    engine: Engine,
    pub(crate) linker: Linker<DataSciState>,
}

/// The engine settings of the data-science modules: exceptions (CPython's C++ libraries use
/// them), copy-on-write memory images, epochs for the deadline; `epochs` off only for the
/// snapshot tool, which runs the interpreter's start-up without a deadline.
pub(crate) fn config(epochs: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_exceptions(true).epoch_interruption(epochs).parallel_compilation(true).memory_init_cow(true);
    config
}

/// The serving engine's instances come from a pool of slots, like components' (`Runtime::new`):
/// a freed slot's reset copies back only the pages its call wrote ([`reset_written_pages`]), up
/// to `keep_resident_bytes`, and keeps them resident, so the next evaluation in that slot finds
/// the interpreter's pages mapped instead of faulting each one in (a fresh mapping per evaluation cost ~1,000 page faults at 1,000 rows, ~5,000 at 100,000).
fn pooled(limits: &Limits) -> wasmtime::Config {
    let mut config = config(true);
    let instances = limits.instances.max(1);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_core_instances(instances)
        .total_memories(instances)
        .total_tables(instances)
        .total_gc_heaps(instances)
        .total_component_instances(0)
        // The interpreter with numpy, pandas, scipy, scikit-learn and statsmodels: ~100,000
        // functions, whose references live in each instance's context and table.
        .max_core_instance_size(64 << 20)
        .table_elements(1 << 20)
        .max_memory_size(limits.max_memory_bytes)
        .table_keep_resident(1 << 20)
        // Reuse freed slots before touching new ones: each slot used keeps its pages resident
        // (the instance's context and table of ~100,000 function references alone are megabytes),
        // and by default the pool tries 100 unused slots first.
        .max_unused_warm_slots(4);
    reset_written_pages(&mut pool, limits);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}

impl DataSciRuntime {
    /// The engine, and a linker with WASI preview 1 and the door.
    pub(crate) fn new(limits: &Limits) -> anyhow::Result<Self> {
        let engine = Engine::new(&pooled(limits))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut DataSciState| &mut state.wasi)?;
        linker.func_wrap("host", "call", door)?;
        Ok(Self { engine, linker })
    }

    /// The wasmtime engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine and linker of the process (made on first use), its epoch advanced by
    /// `runtime`'s.
    pub(in crate::wasm) fn shared(runtime: &Runtime) -> anyhow::Result<Arc<Self>> {
        static SHARED: Mutex<Option<Arc<DataSciRuntime>>> = Mutex::new(None);
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let datasci = match &*shared {
            Some(datasci) => datasci.clone(),
            None => shared.insert(Arc::new(Self::new(&runtime.limits())?)).clone(),
        };
        runtime.tick(datasci.engine());
        Ok(datasci)
    }

    /// A fresh store for one call into `module`, with `runtime`'s limits and metrics; `state`
    /// makes its data from the sandbox's state and the guest's stdout and stderr.
    pub(in crate::wasm) fn store(
        &self,
        runtime: &Runtime,
        module: &Arc<str>,
        cancel: Option<CancelFlag>,
        state: impl FnOnce(CallState, GuestOutput, GuestOutput) -> DataSciState,
    ) -> Store<DataSciState> {
        let (stdout, stderr) = (runtime.output(module, "stdout"), runtime.output(module, "stderr"));
        // The sandbox's own WASI context stays empty: the engine speaks WASI preview 1, set up by
        // `state`.
        let call = runtime.call_state(WasiCtxBuilder::new().build(), stderr.clone(), cancel);
        let mut store = Store::new(&self.engine, state(call, stdout, stderr));
        enforce(&mut store);
        store
    }
}

/// `host.call(ptr, len, out_ptr_ptr, out_len_ptr)`: one request of the driver, answered with
/// bytes the driver allocates (`host_alloc`) and the host fills. Requests: `input-size` (the
/// input's length, u32) and `input-into<address: u32>` (writes the input there, into a buffer
/// of the driver's own, and answers nothing), `language<name>`, `functions<declarations>`, `code<marshalled code>`, `table<description>`,
/// `answer<frame>`, `error<message>`, `noresult` (each answered with nothing), and the model
/// store's `model-save<name length: u32><name><bytes>`, `model-load<name>`, `model-list`
/// (answered with 0 and the model or the list, or 1 and why not), and `sort-order` and
/// `sort-ranks` (`sorting`: answered with nothing, the answer written into the driver's buffer).
fn door(mut caller: Caller<'_, DataSciState>, ptr: i32, len: i32, out_ptr: i32, out_len: i32) -> wasmtime::Result<i32> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return Ok(DOOR_FAULT);
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let request = match memory.data(&caller).get(ptr..ptr.saturating_add(len)) {
        Some(bytes) => bytes.to_vec(),
        None => return Ok(fault(&mut caller, "a door request outside its memory")),
    };
    if let Some(address) = request.strip_prefix(b"input-into") {
        // The input written at `address`, into memory the driver owns (a buffer its numbers
        // columns are then writable views of), not into memory allocated for the answer.
        let Some(input) = caller.data_mut().door.input.take() else {
            return Ok(fault(&mut caller, "the input asked for twice"));
        };
        let at = <[u8; 4]>::try_from(address).map_or(usize::MAX, |a| u32::from_le_bytes(a) as usize);
        let data = memory.data_mut(&mut caller);
        let Some(place) = at.checked_add(input.len()).and_then(|end| data.get_mut(at..end)) else {
            return Ok(fault(&mut caller, "an input buffer outside its memory"));
        };
        input.write(place);
        return answer(&mut caller, &memory, &[], out_ptr, out_len);
    }
    if let Some(sort) = request.strip_prefix(b"sort-") {
        // Sorted natively, in buffers of the driver's own.
        return match SortRequest::parse(sort).and_then(|sort| sort.run(memory.data_mut(&mut caller))) {
            Ok(()) => answer(&mut caller, &memory, &[], out_ptr, out_len),
            Err(what) => Ok(fault(&mut caller, what)),
        };
    }
    let door = &mut caller.data_mut().door;
    let response = if let Some(model) = request.strip_prefix(b"model-") {
        models(door, model)
    } else if request == b"input-size" {
        match &door.input {
            Some(input) => (input.len() as u32).to_le_bytes().to_vec(),
            None => return Ok(fault(&mut caller, "the input asked for twice")),
        }
    } else {
        if let Some(name) = request.strip_prefix(b"language") {
            door.language = Some(String::from_utf8_lossy(name).into_owned());
        } else if let Some(declarations) = request.strip_prefix(b"functions") {
            door.functions = Some(declarations.to_vec());
        } else if let Some(code) = request.strip_prefix(b"code") {
            door.code = Some(code.to_vec());
        } else if let Some(table) = request.strip_prefix(b"table") {
            door.table = Some(table.to_vec());
        } else if let Some(frame) = request.strip_prefix(b"answer") {
            door.outcome = Some(Outcome::Answer(frame.to_vec()));
        } else if let Some(message) = request.strip_prefix(b"error") {
            door.outcome = Some(Outcome::Error(String::from_utf8_lossy(message).into_owned()));
        } else if request == b"noresult" {
            door.outcome = Some(Outcome::NoResult);
        } else {
            return Ok(fault(&mut caller, "an unknown door request"));
        }
        Vec::new()
    };
    answer(&mut caller, &memory, &response, out_ptr, out_len)
}

/// Hands `response` to the driver: into memory it allocates for it (`host_alloc`), whose place
/// and length go to `out_ptr` and `out_len`.
fn answer(
    caller: &mut Caller<'_, DataSciState>,
    memory: &wasmtime::Memory,
    response: &[u8],
    out_ptr: i32,
    out_len: i32,
) -> wasmtime::Result<i32> {
    let Some(alloc) = caller.get_export("host_alloc").and_then(|e| e.into_func()) else {
        return Ok(fault(caller, "no host_alloc export"));
    };
    let Ok(size) = i32::try_from(response.len()) else { return Ok(fault(caller, "an answer over 2 GiB")) };
    let at = alloc.typed::<i32, i32>(&*caller)?.call(&mut *caller, size.max(1))? as u32 as usize;
    let data = memory.data_mut(&mut *caller);
    let fits = at != 0 && at.checked_add(response.len()).is_some_and(|end| end <= data.len());
    let (out_ptr, out_len) = (out_ptr as u32 as usize, out_len as u32 as usize);
    let outs_fit = out_ptr.checked_add(4).is_some_and(|e| e <= data.len())
        && out_len.checked_add(4).is_some_and(|e| e <= data.len());
    if !fits || !outs_fit {
        return Ok(fault(caller, "host_alloc gave memory outside its memory"));
    }
    data[at..at + response.len()].copy_from_slice(response);
    data[out_ptr..out_ptr + 4].copy_from_slice(&(at as u32).to_le_bytes());
    data[out_len..out_len + 4].copy_from_slice(&(response.len() as u32).to_le_bytes());
    Ok(DOOR_OK)
}

/// A model store request: `save…`, `load<name>` or `list`; 0 and the answer, or 1 and why not
/// (kept in `door.model_error` too).
fn models(door: &mut Door, request: &[u8]) -> Vec<u8> {
    let Some(models) = &door.models else { return refuse(door, no_store()) };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let answer = if let Some(save) = request.strip_prefix(b"save") {
        let length = save.get(..4).map_or(usize::MAX, |l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize);
        match save.get(4..).and_then(|rest| rest.split_at_checked(length)) {
            Some((name, bytes)) => models.save(&text(name), bytes).map(|()| Vec::new()),
            None => return [b"\x01".as_slice(), b"a malformed model-save request"].concat(),
        }
    } else if let Some(name) = request.strip_prefix(b"load") {
        models.load(&text(name))
    } else if request == b"list" {
        models.list().map(|list| {
            let lines =
                list.iter().map(|m| format!("{}\t{}\t{}\t{}\n", m.name, m.bytes, u8::from(m.shared), m.modified));
            lines.collect::<String>().into_bytes()
        })
    } else {
        return [b"\x01".as_slice(), b"an unknown model request"].concat();
    };
    match answer {
        Ok(bytes) => [b"\x00".as_slice(), &bytes].concat(),
        Err(error) => refuse(door, error),
    }
}

/// The door's answer to a refused model request: 1 and why; the refusal is kept for the call's
/// status.
fn refuse(door: &mut Door, error: ModelError) -> Vec<u8> {
    let answer = [b"\x01".as_slice(), error.message.as_bytes()].concat();
    door.model_error = Some(error);
    answer
}

fn fault(caller: &mut Caller<'_, DataSciState>, what: &str) -> i32 {
    caller.data_mut().door.fault = Some(what.to_owned());
    DOOR_FAULT
}
