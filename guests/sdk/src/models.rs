//! The model store: a function saves a model (any bytes) in one call and loads it in later calls
//! from the same Qlik app; models an operator put in the host's shared folder are read by every
//! app. It is the one thing that crosses calls.
//!
//! ```no_run
//! use sse_guest::models;
//!
//! fn train(weights: &[f64]) -> Result<f64, String> {
//!     let bytes: Vec<u8> = weights.iter().flat_map(|w| w.to_le_bytes()).collect();
//!     models::save("weights", &bytes)?;
//!     Ok(weights.len() as f64)
//! }
//!
//! fn weights() -> Result<Vec<f64>, String> {
//!     let bytes = models::load("weights")?;
//!     Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
//! }
//! ```
//!
//! A refusal converts into `String` with `?`, and a function that then fails fails the call with
//! the refusal's gRPC code (NOT_FOUND for a missing model, RESOURCE_EXHAUSTED past a size limit,
//! INVALID_ARGUMENT for a bad name, FAILED_PRECONDITION when the host keeps no models).

use crate::bindings::qlik::sse::models as wit;
pub use crate::bindings::qlik::sse::models::{Fault, ModelInfo, Refusal};

/// Saves `model` as this app's model `name` (1 to 100 ASCII letters, digits, `_`, `-` or `.`, not
/// starting with `.`), whole or not at all, replacing one of that name.
pub fn save(name: &str, model: &[u8]) -> Result<(), Refusal> {
    wit::save(name, model)
}

/// This app's model `name` or, if it has none, the operator's shared one.
pub fn load(name: &str) -> Result<Vec<u8>, Refusal> {
    wit::load(name)
}

/// This app's models, then the shared ones.
pub fn list() -> Result<Vec<ModelInfo>, Refusal> {
    wit::list()
}

impl From<Refusal> for String {
    fn from(refusal: Refusal) -> Self {
        refusal.message
    }
}
