//! Requests read exactly as protobuf reads them, through the real interface: encodings a strict
//! peer may send (unknown fields and groups at every level, long varints, known header fields with
//! another wire type) are answered rightly, invalid ones are INVALID_ARGUMENT naming the problem,
//! and answers keep every f64 bit, `-0.0` included.

use prost::Message;
use sse_wasm::pb;
use tonic::Code;

use crate::util::{EXECUTE_FUNCTION, TestServer, assert_status, call_raw, function_header};

/// `Dual { numData }` of `n`, as a row's field.
fn number(n: f64) -> Vec<u8> {
    let mut dual = vec![0x09];
    dual.extend_from_slice(&n.to_le_bytes());
    field(1, &dual)
}

/// A length-delimited field (payload under 128 bytes, or any with a longer length varint).
fn field(number: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2];
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

fn numbers_answer(answer: &crate::util::Answer) -> Vec<f64> {
    answer.rows().iter().map(|r| r.duals[0].num_data).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_field_after_an_empty_text_is_skipped_not_read_as_text() {
    let server = TestServer::start(&["text"]).await;
    // Row: an empty dual (`0a 00`), then field 2 of 254 bytes, which no message here knows.
    let mut row = vec![0x0a, 0x00];
    row.extend(field(2, &[b'x'; 254]));
    let message = field(1, &row);
    let answer = call_raw(&server, EXECUTE_FUNCTION, &[(pb::FUNCTION_HEADER, function_header("Upper"))], vec![message])
        .await
        .expect("valid request");
    assert_eq!(answer.strings(), [""], "the empty text, upper-cased");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_long_varints_and_unknown_fields_at_every_level_are_skipped() {
    let server = TestServer::start(&["column_operations"]).await;
    // field 7 group { field 1 varint of 10 bytes; field 9 group {} ; field 3 fixed32 } end 7
    let mut group = vec![0x3b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    group.extend_from_slice(&[0x4b, 0x4c, 0x1d, 1, 2, 3, 4, 0x3c]);
    let mut dual = group.clone();
    dual.extend_from_slice(&[0x09]);
    dual.extend_from_slice(&2.5f64.to_le_bytes());
    dual.extend_from_slice(&group);
    let mut row = group.clone();
    row.extend(field(1, &dual));
    row.extend_from_slice(&group);
    // Non-minimal key and length for the row: `8a 00`, then the length in two bytes.
    let mut message = group.clone();
    message.extend_from_slice(&[0x8a, 0x00, (row.len() as u8) | 0x80, 0x00]);
    message.extend_from_slice(&row);
    message.extend(field(1, &number(4.0)));
    let answer = call_raw(
        &server,
        EXECUTE_FUNCTION,
        &[(pb::FUNCTION_HEADER, function_header("SumOfColumn"))],
        vec![message.clone()],
    )
    .await
    .expect("valid request");
    assert_eq!(numbers_answer(&answer), [6.5]);
    assert!(pb::BundledRows::decode(&message[..]).is_ok(), "prost reads it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_encodings_are_invalid_argument_naming_the_problem() {
    let server = TestServer::start(&["column_operations"]).await;
    let header = [(pb::FUNCTION_HEADER, function_header("SumOfColumn"))];
    // Field number 0 in a row.
    let zero = field(1, &[0x02, 0x00]);
    assert_status(
        call_raw(&server, EXECUTE_FUNCTION, &header, vec![zero]).await,
        Code::InvalidArgument,
        &["SumOfColumn", "number 0"],
    );
    // Invalid UTF-8 in the text of a numeric parameter: protobuf refuses the whole message.
    let mut dual = vec![0x12, 0x01, 0xff];
    dual.extend(number(1.0)[2..].iter());
    let bad_text = field(1, &field(1, &dual));
    assert_status(
        call_raw(&server, EXECUTE_FUNCTION, &header, vec![bad_text]).await,
        Code::InvalidArgument,
        &["UTF-8"],
    );
    // Invalid UTF-8 replaced by a later strData: still refused.
    let replaced = field(1, &field(1, &[0x12, 0x01, 0xff, 0x12, 0x01, b'a']));
    assert_status(
        call_raw(&server, EXECUTE_FUNCTION, &header, vec![replaced]).await,
        Code::InvalidArgument,
        &["UTF-8"],
    );
    // A group that never ends.
    assert_status(
        call_raw(&server, EXECUTE_FUNCTION, &header, vec![vec![0x3b, 0x08, 0x01]]).await,
        Code::InvalidArgument,
        &["SumOfColumn"],
    );
    // The server still serves.
    let answer = call_raw(&server, EXECUTE_FUNCTION, &header, vec![field(1, &number(2.0))]).await.expect("serves");
    assert_eq!(numbers_answer(&answer), [2.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_fields_with_another_wire_type_are_unknown_fields_as_protobuf_reads_them() {
    let server = TestServer::start(&["column_operations"]).await;
    // FunctionRequestHeader: version (field 2) as a varint, then the real functionId.
    let mut function = vec![0x10, 0x07];
    function.extend(function_header("SumOfColumn"));
    // CommonRequestHeader: appId as a fixed32, cardinality as length-delimited, and a group.
    let common = vec![0x0d, 1, 2, 3, 4, 0x1a, 0x00, 0x2b, 0x2c, 0x12, 0x01, b'u'];
    let answer = call_raw(
        &server,
        EXECUTE_FUNCTION,
        &[(pb::FUNCTION_HEADER, function), (pb::COMMON_HEADER, common)],
        vec![field(1, &number(3.0))],
    )
    .await
    .expect("protobuf reads these headers");
    assert_eq!(numbers_answer(&answer), [3.0]);
    // What protobuf refuses is still refused: a field number 0 in the header.
    assert_status(
        call_raw(&server, EXECUTE_FUNCTION, &[(pb::FUNCTION_HEADER, vec![0x00, 0x01])], Vec::new()).await,
        Code::InvalidArgument,
        &["qlik-functionrequestheader-bin", "number 0"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_zero_keeps_its_sign_on_the_way_out() {
    let server = TestServer::start(&["column_operations"]).await;
    let row = [number(-0.0), number(-0.0)].concat();
    let answer = call_raw(
        &server,
        EXECUTE_FUNCTION,
        &[(pb::FUNCTION_HEADER, function_header("SumOfRows"))],
        vec![field(1, &row)],
    )
    .await
    .expect("valid request");
    let sum = numbers_answer(&answer)[0];
    assert!(sum == 0.0 && sum.is_sign_negative(), "-0 + -0 is -0, not {sum}");
}
