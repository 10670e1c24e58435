//! The benchmark's client side: requests encoded before the clock starts, answers checked by
//! counting rows and decoding a sample, so the client is never the bottleneck.

use bytes::{Buf, Bytes};
use prost::Message;
use sse_wasm::functions::registry::function_id;
use sse_wasm::pb;
use sse_wasm::wire::codec::{EncodedRows, RowsCodec};
use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// The value of one request cell.
#[derive(Clone, Copy)]
pub enum Cell {
    Number(f64),
    Text(&'static str),
    Dual(f64, &'static str),
}

/// `rows` rows made by `row`, encoded as BundledRows of `bundle` rows each.
pub fn encode(rows: usize, bundle: usize, row: impl Fn(usize) -> Vec<Cell>) -> Vec<Bytes> {
    let mut messages = Vec::new();
    let mut start = 0;
    while start < rows {
        let end = (start + bundle).min(rows);
        let message = pb::BundledRows {
            rows: (start..end)
                .map(|i| pb::Row {
                    duals: row(i)
                        .into_iter()
                        .map(|cell| match cell {
                            Cell::Number(n) => pb::Dual { num_data: n, str_data: String::new() },
                            Cell::Text(s) => pb::Dual { num_data: 0.0, str_data: s.to_owned() },
                            Cell::Dual(n, s) => pb::Dual { num_data: n, str_data: s.to_owned() },
                        })
                        .collect(),
                })
                .collect(),
        };
        messages.push(Bytes::from(message.encode_to_vec()));
        start = end;
    }
    messages
}

/// The number of rows in an encoded BundledRows: one length-delimited field 1 per row.
pub fn count_rows(mut message: &[u8]) -> usize {
    let mut rows = 0;
    while message.has_remaining() {
        let Ok(key) = prost::encoding::decode_varint(&mut message) else { return rows };
        if key & 7 != 2 {
            return rows;
        }
        let Ok(len) = prost::encoding::decode_varint(&mut message) else { return rows };
        message.advance(len as usize);
        rows += usize::from(key >> 3 == 1);
    }
    rows
}

/// What one call answered: its row count, and the first row of the first message.
pub struct Answer {
    pub rows: usize,
    pub first: Option<pb::Row>,
}

/// Calls `name` on `channel` with pre-encoded `messages`.
pub async fn call(channel: &Channel, name: &str, messages: Vec<Bytes>) -> Result<Answer, Status> {
    let header = pb::FunctionRequestHeader { function_id: function_id(name), version: String::new() };
    exchange(channel, "/qlik.sse.Connector/ExecuteFunction", pb::FUNCTION_HEADER, header.encode_to_vec(), messages)
        .await
}

/// Evaluates the script of `header` (EvaluateScript) over pre-encoded `messages`.
pub async fn evaluate(
    channel: &Channel,
    header: &pb::ScriptRequestHeader,
    messages: Vec<Bytes>,
) -> Result<Answer, Status> {
    exchange(channel, "/qlik.sse.Connector/EvaluateScript", pb::SCRIPT_HEADER, header.encode_to_vec(), messages).await
}

async fn exchange(
    channel: &Channel,
    path: &'static str,
    key: &'static str,
    header: Vec<u8>,
    messages: Vec<Bytes>,
) -> Result<Answer, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    // The host's own codec works from this side too: requests go out as already-encoded bytes,
    // answers come back undecoded.
    let mut request = tonic::Request::new(futures::stream::iter(messages.into_iter().map(EncodedRows)));
    request.metadata_mut().insert_bin(key, MetadataValue::from_bytes(&header));
    let path = http::uri::PathAndQuery::from_static(path);
    let mut stream = grpc.streaming(request, path, RowsCodec).await?.into_inner();
    let mut answer = Answer { rows: 0, first: None };
    while let Some(message) = stream.message().await? {
        let message = message.0;
        answer.rows += count_rows(&message);
        if answer.first.is_none() {
            answer.first = pb::BundledRows::decode(message).ok().and_then(|m| m.rows.into_iter().next());
        }
    }
    Ok(answer)
}
