//! The protobuf messages and gRPC service of `qlik.sse`, generated from `proto/ServerSideExtension.proto`.
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("qlik.sse");

/// The host's own server side of `qlik.sse.Connector`: the same service and routes, but the
/// streaming methods carry raw protobuf bytes (`wire::codec`) instead of decoded
/// `BundledRows`. The prost-typed `connector_server` above serves only as a reference for
/// comparisons.
pub mod raw {
    include!(concat!(env!("OUT_DIR"), "/wire/qlik.sse.Connector.rs"));
}

/// Request metadata key carrying a serialized [`CommonRequestHeader`].
pub const COMMON_HEADER: &str = "qlik-commonrequestheader-bin";
/// Request metadata key carrying a serialized [`FunctionRequestHeader`].
pub const FUNCTION_HEADER: &str = "qlik-functionrequestheader-bin";
/// Request metadata key carrying a serialized [`ScriptRequestHeader`].
pub const SCRIPT_HEADER: &str = "qlik-scriptrequestheader-bin";
/// Response metadata key carrying a serialized [`TableDescription`].
pub const TABLE_DESCRIPTION: &str = "qlik-tabledescription-bin";
/// Response metadata key whose value `no-store` turns Qlik's result cache off for a call.
pub const CACHE: &str = "qlik-cache";
