//! The host side of the `qlik:sse/plugin` WIT world, and the conversions between its generated
//! types and the host's own. Crate-private to `wasm`: the rest of the host sees guests only through
//! `Guest`, `FunctionInstance` and `ScriptEngine`, in the host's own types.
#![allow(missing_docs)]

use crate::model::{Batch, Column, DataType, FunctionDef, FunctionType, Mode, Strings, TableDef};

wasmtime::component::bindgen!({
    path: "wit",
    world: "plugin",
});

/// The `script-engine` world, sharing the types of `plugin`.
pub mod script_engine {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "script-engine",
        with: { "qlik:sse/types": crate::wasm::component::bindings::qlik::sse::types },
    });
}

use qlik::sse::types as wit;

/// The name a component exports the `functions` interface under.
pub const FUNCTIONS_EXPORT: &str = "qlik:sse/functions@0.1.0";
/// The name a component exports the `scripts` interface under.
pub const SCRIPTS_EXPORT: &str = "qlik:sse/scripts@0.1.0";

impl From<DataType> for wit::DataType {
    fn from(t: DataType) -> Self {
        match t {
            DataType::Text => Self::Text,
            DataType::Numeric => Self::Numeric,
            DataType::Dual => Self::Dual,
        }
    }
}

impl From<FunctionType> for wit::FunctionType {
    fn from(t: FunctionType) -> Self {
        match t {
            FunctionType::Scalar => Self::Scalar,
            FunctionType::Aggregation => Self::Aggregation,
            FunctionType::Tensor => Self::Tensor,
        }
    }
}

impl From<wit::DataType> for DataType {
    fn from(t: wit::DataType) -> Self {
        match t {
            wit::DataType::Text => Self::Text,
            wit::DataType::Numeric => Self::Numeric,
            wit::DataType::Dual => Self::Dual,
        }
    }
}

impl From<wit::Strings> for Strings {
    fn from(s: wit::Strings) -> Self {
        Self { data: s.data, offsets: s.offsets }
    }
}

impl From<Strings> for wit::Strings {
    fn from(s: Strings) -> Self {
        Self { data: s.data, offsets: s.offsets }
    }
}

impl From<wit::Batch> for Batch {
    fn from(b: wit::Batch) -> Self {
        let columns = b
            .columns
            .into_iter()
            .map(|c| match c {
                wit::Column::Text(s) => Column::Text(s.into()),
                wit::Column::Numeric(n) => Column::Numeric(n),
                wit::Column::Dual(d) => Column::Dual(d.numbers, d.strings.into()),
            })
            .collect();
        Self { rows: b.rows as usize, columns }
    }
}

impl TryFrom<Batch> for wit::Batch {
    type Error = String;
    fn try_from(b: Batch) -> Result<Self, String> {
        let rows = u32::try_from(b.rows).map_err(|_| format!("a batch of {} rows is too large", b.rows))?;
        let columns = b
            .columns
            .into_iter()
            .map(|c| match c {
                Column::Text(s) => wit::Column::Text(s.into()),
                Column::Numeric(n) => wit::Column::Numeric(n),
                Column::Dual(numbers, strings) => wit::Column::Dual(wit::Duals { numbers, strings: strings.into() }),
            })
            .collect();
        Ok(Self { rows, columns })
    }
}

impl From<wit::FunctionDef> for FunctionDef {
    fn from(d: wit::FunctionDef) -> Self {
        Self {
            name: d.name,
            description: d.description,
            function_type: match d.function_type {
                wit::FunctionType::Scalar => FunctionType::Scalar,
                wit::FunctionType::Aggregation => FunctionType::Aggregation,
                wit::FunctionType::Tensor => FunctionType::Tensor,
            },
            return_type: d.return_type.into(),
            params: d.params.into_iter().map(|p| (p.name, p.data_type.into())).collect(),
            mode: match d.mode {
                wit::Mode::PerBatch => Mode::PerBatch,
                wit::Mode::PerCall => Mode::PerCall,
            },
            table: d.table.map(|t| TableDef {
                name: t.name,
                fields: t.fields.into_iter().map(|f| (f.name, f.data_type.into())).collect(),
            }),
            cacheable: d.cacheable,
        }
    }
}
