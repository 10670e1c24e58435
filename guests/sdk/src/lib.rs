//! `sse-guest`: write Qlik server-side-extension functions for sse-wasm as plain Rust functions.
//!
//! ```no_run
//! use sse_guest::Function;
//!
//! fn sum_of_rows(a: f64, b: f64) -> f64 {
//!     a + b
//! }
//!
//! sse_guest::export_functions![
//!     Function::tensor("SumOfRows", sum_of_rows).params(["a", "b"]),
//! ];
//! ```
//!
//! The SDK reads the parameter columns, calls the function once per row, packs the answers into
//! result columns and describes the functions to the host. Parameter and result types come from the
//! Rust signature: `f64` is NUMERIC, `String` is STRING, [`Dual`] is DUAL; a tuple of them is a
//! table with one column each; `Result<_, E>` fails the call with `E`'s text. Aggregations (and
//! functions that need every row before they answer) implement [`Aggregate`]. [`models`] keeps
//! trained models between calls of one Qlik app.

mod columns;
mod function;
pub mod models;
mod values;

/// The generated bindings of the `qlik:sse/plugin` world; [`export_functions!`] wires them up.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "sse_guest::bindings",
    });
}

pub use bindings::qlik::sse::types::{
    Batch, Column, DataType, Duals, Field, FunctionDef, FunctionType, Mode, Param, Strings, Table,
};
pub use columns::{ColumnBuilder, column_len, text_at};
pub use function::{Aggregate, Function, Plugin, Registry};
pub use models::Refusal;
pub use values::{Arg, Args, Cell, Dual, Returns, RowFn};

/// Exports the listed [`Function`]s as this component's functions. Use it once per crate.
///
/// `export_functions![f1, f2, ...]` lists them; `export_functions!(all: expr)` takes a
/// `Vec<Function>` built by code.
#[macro_export]
macro_rules! export_functions {
    (all: $functions:expr) => {
        struct __SseGuestPlugin;

        impl $crate::Plugin for __SseGuestPlugin {
            fn registry() -> &'static $crate::Registry {
                static REGISTRY: ::std::sync::OnceLock<$crate::Registry> = ::std::sync::OnceLock::new();
                REGISTRY.get_or_init(|| $crate::Registry::new($functions))
            }
        }

        $crate::bindings::__export_plugin!(__SseGuestPlugin with_types_in $crate::bindings);
    };
    ($($function:expr),* $(,)?) => {
        $crate::export_functions!(all: ::std::vec![$($function),*]);
    };
}
