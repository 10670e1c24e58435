//! The ceiling of sse-wasm's own gRPC path: the benchmark's functions in native Rust over typed
//! columns, served by the same server, codec and call threads as Wasm functions.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sse_wasm::Runtime;
use sse_wasm::functions::native::{NativeFunction, NativeInvocation};
use sse_wasm::functions::registry::Registry;
use sse_wasm::model::FunctionType;
use sse_wasm::model::{Batch, Column, DataType, Strings};
use sse_wasm::model::{FunctionDef, Mode, TableDef};
use sse_wasm::server::ServeOptions;
use sse_wasm::server::Server;
use sse_wasm::wasm::Limits;

fn def(name: &str, function_type: FunctionType, mode: Mode, params: &[DataType], returns: DataType) -> FunctionDef {
    FunctionDef {
        name: name.to_owned(),
        description: String::new(),
        function_type,
        return_type: returns,
        params: params.iter().enumerate().map(|(i, &t)| (format!("arg{i}"), t)).collect(),
        mode,
        table: None::<TableDef>,
        cacheable: true,
    }
}

fn numbers(batch: &Batch, index: usize) -> Result<&[f64], String> {
    match batch.columns.get(index) {
        Some(Column::Numeric(values)) => Ok(values),
        _ => Err("expected a numeric column".into()),
    }
}

struct SumOfRows(FunctionDef);

impl NativeFunction for SumOfRows {
    fn def(&self) -> &FunctionDef {
        &self.0
    }
    fn call(&self, input: Batch) -> Result<Batch, String> {
        let sums = numbers(&input, 0)?.iter().zip(numbers(&input, 1)?).map(|(a, b)| a + b).collect();
        Ok(Batch { rows: input.rows, columns: vec![Column::Numeric(sums)] })
    }
}

struct HelloWorld(FunctionDef);

impl NativeFunction for HelloWorld {
    fn def(&self) -> &FunctionDef {
        &self.0
    }
    fn call(&self, input: Batch) -> Result<Batch, String> {
        Ok(input)
    }
}

struct DualTwice(FunctionDef);

impl NativeFunction for DualTwice {
    fn def(&self) -> &FunctionDef {
        &self.0
    }
    fn call(&self, input: Batch) -> Result<Batch, String> {
        let Some(Column::Dual(values, strings)) = input.columns.first() else { return Err("expected duals".into()) };
        // Column-wise, as the Wasm guest does it: both halves doubled, no `String` per value.
        let mut doubled = Strings { data: Vec::with_capacity(strings.data.len() * 2), offsets: vec![0] };
        doubled.offsets.reserve(input.rows);
        for pair in strings.offsets.windows(2) {
            let text = &strings.data[pair[0] as usize..pair[1] as usize];
            doubled.data.extend_from_slice(text);
            doubled.data.extend_from_slice(text);
            doubled.offsets.push(u32::try_from(doubled.data.len()).map_err(|e| e.to_string())?);
        }
        Ok(Batch { rows: input.rows, columns: vec![Column::Dual(values.iter().map(|v| v * 2.0).collect(), doubled)] })
    }
}

struct SumOfColumn(FunctionDef);

struct Sum(f64);

impl NativeInvocation for Sum {
    fn update(&mut self, input: Batch) -> Result<Batch, String> {
        self.0 += numbers(&input, 0)?.iter().sum::<f64>();
        Ok(Batch::default())
    }
    fn finish(&mut self) -> Result<Batch, String> {
        Ok(Batch { rows: 1, columns: vec![Column::Numeric(vec![self.0])] })
    }
}

impl NativeFunction for SumOfColumn {
    fn def(&self) -> &FunctionDef {
        &self.0
    }
    fn invocation(&self) -> Box<dyn NativeInvocation> {
        Box::new(Sum(0.0))
    }
}

/// The benchmark's functions in native Rust.
pub fn functions() -> Vec<Arc<dyn NativeFunction>> {
    use DataType::{Dual, Numeric, Text};
    use FunctionType::{Aggregation, Tensor};
    vec![
        Arc::new(SumOfRows(def("SumOfRows", Tensor, Mode::PerBatch, &[Numeric, Numeric], Numeric))),
        Arc::new(SumOfColumn(def("SumOfColumn", Aggregation, Mode::PerCall, &[Numeric], Numeric))),
        Arc::new(HelloWorld(def("HelloWorld", Tensor, Mode::PerBatch, &[Text], Text))),
        Arc::new(DualTwice(def("DualTwice", Tensor, Mode::PerBatch, &[Dual], Dual))),
    ]
}

/// Rows/s of the bare codec loop over `messages`: decode each into columns, run `name` natively,
/// encode the answer — what a call costs without gRPC, HTTP/2, threads or Wasm.
pub fn bare_rows_per_second(name: &str, messages: &[bytes::Bytes], rows: usize) -> anyhow::Result<f64> {
    use sse_wasm::wire::codec::{self, MAX_RESPONSE_BYTES};
    let functions = functions();
    let function = functions.iter().find(|f| f.def().name == name).ok_or_else(|| anyhow::anyhow!("no {name}"))?;
    let params = function.def().param_types();
    let mut answered = 0usize;
    let mut encode = |batch: &Batch| {
        codec::encode(batch, MAX_RESPONSE_BYTES, |m| {
            answered += m.0.len();
            Ok::<_, ()>(())
        })
        .map_err(|_| anyhow::anyhow!("encode failed"))
    };
    let started = std::time::Instant::now();
    match function.def().mode {
        Mode::PerBatch => {
            for message in messages {
                let answer = function.call(codec::decode(message, &params)?).map_err(anyhow::Error::msg)?;
                encode(&answer)?;
            }
        }
        Mode::PerCall => {
            let mut invocation = function.invocation();
            for message in messages {
                invocation.update(codec::decode(message, &params)?).map_err(anyhow::Error::msg)?;
            }
            encode(&invocation.finish().map_err(anyhow::Error::msg)?)?;
        }
    }
    let took = started.elapsed();
    anyhow::ensure!(answered > 0, "nothing encoded");
    Ok(rows as f64 / took.as_secs_f64())
}

pub async fn serve(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let registry = Arc::new(ArcSwap::from_pointee(Registry::with_native(functions(), Vec::new())));
    let engine = Runtime::new(Limits::default())?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Server::new(engine, registry, ServeOptions::default()).serve(listener, std::future::pending()).await
}
