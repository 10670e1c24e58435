//! What travels on the wire: the protobuf types generated from Qlik's proto, their conversions
//! to and from the host's model, the protobuf wire-format rules, and the fast row codec.
//!
//! Depends only on `model`. Generated types stay here and in the layers that speak gRPC
//! (`server`, `tools`); they never appear in the model's types.

pub mod codec;
pub(crate) mod convert;
pub(crate) mod format;
pub mod pb;
