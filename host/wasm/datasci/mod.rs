//! The data-science engine: CPython with numpy, pandas, scipy and scikit-learn as one core module
//! (WASI preview 1, not a component), its store's data and the door through which the driver asks
//! for input and answers, the evaluation of a `#!pandas` script, the Python function files it
//! runs, the frames crossing the door (the input frame written straight into the driver's memory),
//! the dictionaries its text columns travel as, the sorting it does natively for the driver, and
//! the instances it makes ahead of evaluations. (The tool that pre-initializes it is `tools::snapshot`.)
//!
//! Uses `core`, `cache` and `component` (a function file's answer is a component's).

pub(crate) mod ahead;
pub(crate) mod dictionary;
pub(crate) mod engine;
pub(crate) mod frame;
pub(crate) mod input;
pub(crate) mod pyfile;
pub(crate) mod runtime;
pub(crate) mod sorting;
