//! The wire codec: `BundledRows` decoded straight into typed columns and encoded straight from
//! them, without building a `Row` and a `Dual` (and a `String`) per value. This is also the one
//! place that sizes outgoing messages.
//!
//! tonic only moves bytes here: a request message stays a [`WireRows`] (its undecoded bytes, no
//! copy) until the call's own thread decodes it with the function's parameter types; an answer
//! arrives as [`EncodedRows`], encoded on that thread too. So the async runtime does no per-row
//! work at all, and calls decode in parallel.
//!
//! The layout (proto3): `BundledRows { repeated Row rows = 1 }`, `Row { repeated Dual duals = 1 }`,
//! `Dual { double numData = 1; string strData = 2 }`. Fields at their default value (0.0, "") are
//! not written, as every protobuf encoder does; unknown fields are skipped when reading.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::columns::{Batch, Column, DataType, Strings};

/// The largest message Qlik accepts from a plugin.
pub const QLIK_MESSAGE_LIMIT: usize = 4 << 20;

/// The largest answer message the host sends, in encoded bytes: far below the 4 MiB Qlik
/// accepts, so a message never nears the limit whatever its last row.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A request message, still encoded.
#[derive(Clone, Debug)]
pub struct WireRows(pub Bytes);

/// An answer message, already encoded.
#[derive(Clone, Debug)]
pub struct EncodedRows(pub Bytes);

/// Hands request bytes and answer bytes through untouched.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowsCodec;

impl Encoder for RowsCodec {
    type Item = EncodedRows;
    type Error = Status;
    fn encode(&mut self, item: EncodedRows, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item.0);
        Ok(())
    }
}

impl Decoder for RowsCodec {
    type Item = WireRows;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<WireRows>, Status> {
        Ok(Some(WireRows(src.copy_to_bytes(src.remaining()))))
    }
}

impl Codec for RowsCodec {
    type Encode = EncodedRows;
    type Decode = WireRows;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        *self
    }
    fn decoder(&mut self) -> Self {
        *self
    }
}

const LENGTH_DELIMITED: u64 = 2;
const FIXED64: u64 = 1;
/// Key of field 1, length-delimited: a `Row` in `BundledRows`, a `Dual` in `Row`.
const KEY_ITEM: u8 = (1 << 3) | LENGTH_DELIMITED as u8;
/// Key of `Dual.numData`.
const KEY_NUMBER: u8 = (1 << 3) | FIXED64 as u8;
/// Key of `Dual.strData`.
const KEY_TEXT: u8 = (2 << 3) | LENGTH_DELIMITED as u8;

fn malformed(reason: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(reason.into())
}

fn varint(buf: &mut &[u8]) -> Result<u64, DecodeError> {
    prost::encoding::decode_varint(buf).map_err(|e| malformed(e.to_string()))
}

/// Takes a length-delimited payload off the front of `buf`.
fn delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let len = usize::try_from(varint(buf)?).map_err(|_| malformed("a length does not fit in memory"))?;
    let (payload, rest) =
        buf.split_at_checked(len).ok_or_else(|| malformed("a length runs past the end of the message"))?;
    *buf = rest;
    Ok(payload)
}

/// Skips one field of wire type `wire_type`.
fn skip(buf: &mut &[u8], wire_type: u64) -> Result<(), DecodeError> {
    let fixed = match wire_type {
        0 => return varint(buf).map(drop),
        2 => return delimited(buf).map(drop),
        1 => 8,
        5 => 4,
        _ => 0,
    };
    if fixed == 0 || buf.len() < fixed {
        return Err(malformed(format!("a field of wire type {wire_type} is cut short or unknown")));
    }
    buf.advance(fixed);
    Ok(())
}

/// One `Dual`: its number (0.0 when absent) and its text bytes ("" when absent).
fn dual(mut buf: &[u8]) -> Result<(f64, &[u8]), DecodeError> {
    let (mut number, mut text) = (0.0, &[][..]);
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        match (key >> 3, key & 7) {
            (1, FIXED64) if buf.len() >= 8 => number = buf.get_f64_le(),
            (2, LENGTH_DELIMITED) => text = delimited(&mut buf)?,
            (_, wire_type) => skip(&mut buf, wire_type)?,
        }
    }
    Ok((number, text))
}

/// Appends `text` to a string column, checking it is UTF-8 as proto3 requires.
fn push_text(strings: &mut Strings, text: &[u8]) -> Result<(), DecodeError> {
    let text = std::str::from_utf8(text).map_err(|_| malformed("a string value is not UTF-8"))?;
    strings.push(text).map_err(malformed)
}

/// Why a request message did not decode.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a valid `BundledRows`.
    #[error("a request message is not a valid BundledRows: {0}")]
    Malformed(String),
    /// A row has the wrong number of values.
    #[error("row {row} of a bundle has {found} column(s), the function takes {expected} parameter(s)")]
    Columns {
        /// The row's index in its message.
        row: usize,
        /// Values found.
        found: usize,
        /// Parameters declared.
        expected: usize,
    },
}

/// Decodes a `BundledRows` into columns of the declared parameter types. Every row must carry
/// exactly one dual per parameter.
pub fn decode(message: &[u8], params: &[DataType]) -> Result<Batch, DecodeError> {
    let mut columns: Vec<Column> = params.iter().map(|&t| Column::with_capacity(t, 0)).collect();
    let rows = decode_into(message, &mut columns)?;
    Ok(Batch { rows, columns })
}

/// Appends the rows of `message` to `columns`; the row count, or why not.
fn decode_into(mut message: &[u8], columns: &mut [Column]) -> Result<usize, DecodeError> {
    let mut rows = 0;
    while !message.is_empty() {
        let key = varint(&mut message)?;
        if key != u64::from(KEY_ITEM) {
            skip(&mut message, key & 7)?;
            continue;
        }
        let mut row = delimited(&mut message)?;
        let mut index = 0;
        while !row.is_empty() {
            let key = varint(&mut row)?;
            if key != u64::from(KEY_ITEM) {
                skip(&mut row, key & 7)?;
                continue;
            }
            let (number, text) = dual(delimited(&mut row)?)?;
            match columns.get_mut(index) {
                Some(Column::Numeric(numbers)) => numbers.push(number),
                Some(Column::Text(strings)) => push_text(strings, text)?,
                Some(Column::Dual(numbers, strings)) => {
                    numbers.push(number);
                    push_text(strings, text)?;
                }
                None => {}
            }
            index += 1;
        }
        if index != columns.len() {
            return Err(DecodeError::Columns { row: rows, found: index, expected: columns.len() });
        }
        rows += 1;
    }
    Ok(rows)
}

/// Why [`encode`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum EncodeError<E> {
    /// A row of this many encoded bytes fits no message Qlik accepts.
    OversizedRow(usize),
    /// `emit` failed.
    Emit(E),
}

fn varint_len(value: usize) -> usize {
    prost::encoding::encoded_len_varint(value as u64)
}

/// The encoded size of value `i` of `column` as a `Dual` (without its own key and length).
fn dual_len(column: &Column, i: usize) -> usize {
    let number = |n: f64| if n == 0.0 { 0 } else { 9 };
    let text = |s: &Strings| {
        let len = (s.offsets[i + 1] - s.offsets[i]) as usize;
        if len == 0 { 0 } else { 1 + varint_len(len) + len }
    };
    match column {
        Column::Numeric(numbers) => number(numbers[i]),
        Column::Text(strings) => text(strings),
        Column::Dual(numbers, strings) => number(numbers[i]) + text(strings),
    }
}

fn put_dual(out: &mut BytesMut, column: &Column, i: usize) {
    let number = |out: &mut BytesMut, n: f64| {
        if n != 0.0 {
            out.put_u8(KEY_NUMBER);
            out.put_f64_le(n);
        }
    };
    let text = |out: &mut BytesMut, s: &Strings| {
        let bytes = &s.data[s.offsets[i] as usize..s.offsets[i + 1] as usize];
        if !bytes.is_empty() {
            out.put_u8(KEY_TEXT);
            prost::encoding::encode_varint(bytes.len() as u64, out);
            out.put_slice(bytes);
        }
    };
    match column {
        Column::Numeric(numbers) => number(out, numbers[i]),
        Column::Text(strings) => text(out, strings),
        Column::Dual(numbers, strings) => {
            number(out, numbers[i]);
            text(out, strings);
        }
    }
}

/// Encodes a checked batch as `BundledRows` messages of at most `max_bytes` each (a single row
/// larger than that travels alone), handing each to `emit`; stops when `emit` fails. A row no
/// message Qlik accepts could hold fails with its size.
pub fn encode<E>(
    batch: &Batch,
    max_bytes: usize,
    mut emit: impl FnMut(EncodedRows) -> Result<(), E>,
) -> Result<(), EncodeError<E>> {
    let mut message = BytesMut::new();
    let mut dual_lens = vec![0; batch.columns.len()];
    for i in 0..batch.rows {
        let mut row_len = 0;
        for (len, column) in dual_lens.iter_mut().zip(&batch.columns) {
            *len = dual_len(column, i);
            row_len += 1 + varint_len(*len) + *len;
        }
        let size = 1 + varint_len(row_len) + row_len;
        if size > QLIK_MESSAGE_LIMIT - 16 {
            return Err(EncodeError::OversizedRow(size));
        }
        if message.len() + size > max_bytes && !message.is_empty() {
            emit(EncodedRows(message.split().freeze())).map_err(EncodeError::Emit)?;
        }
        if message.capacity() - message.len() < size {
            message.reserve(size.max(max_bytes.min(batch.rows.saturating_sub(i) * size)));
        }
        message.put_u8(KEY_ITEM);
        prost::encoding::encode_varint(row_len as u64, &mut message);
        for (&len, column) in dual_lens.iter().zip(&batch.columns) {
            message.put_u8(KEY_ITEM);
            prost::encoding::encode_varint(len as u64, &mut message);
            put_dual(&mut message, column, i);
        }
    }
    if !message.is_empty() {
        emit(EncodedRows(message.freeze())).map_err(EncodeError::Emit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::pb;

    fn row(duals: &[(f64, &str)]) -> pb::Row {
        pb::Row { duals: duals.iter().map(|&(n, s)| pb::Dual { num_data: n, str_data: s.to_owned() }).collect() }
    }

    fn messages(batch: &Batch, max_bytes: usize) -> Vec<pb::BundledRows> {
        let mut out = Vec::new();
        encode(batch, max_bytes, |m| {
            out.push(pb::BundledRows::decode(m.0).expect("prost reads what we write"));
            Ok::<_, ()>(())
        })
        .expect("encodes");
        out
    }

    #[test]
    fn decodes_what_prost_encodes_into_typed_columns() {
        let message = pb::BundledRows { rows: vec![row(&[(1.0, "a"), (2.0, "x")]), row(&[(0.0, "bé"), (-4.5, "")])] };
        let batch = decode(&message.encode_to_vec(), &[DataType::Text, DataType::Dual]).unwrap();
        assert_eq!(batch.rows, 2);
        assert_eq!(batch.columns[0], Column::Text(Strings { data: b"ab\xc3\xa9".to_vec(), offsets: vec![0, 1, 4] }));
        assert_eq!(
            batch.columns[1],
            Column::Dual(vec![2.0, -4.5], Strings { data: b"x".to_vec(), offsets: vec![0, 1, 1] })
        );
        let numbers = decode(&message.encode_to_vec(), &[DataType::Numeric, DataType::Numeric]).unwrap();
        assert_eq!(numbers.columns[0], Column::Numeric(vec![1.0, 0.0]));
    }

    #[test]
    fn encodes_what_prost_reads_back() {
        let original =
            pb::BundledRows { rows: vec![row(&[(1.5, "one"), (f64::NAN, "")]), row(&[(0.0, ""), (-0.25, "ünï")])] };
        let batch = decode(&original.encode_to_vec(), &[DataType::Dual, DataType::Dual]).unwrap();
        let out = messages(&batch, MAX_RESPONSE_BYTES);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rows[0].duals[0], pb::Dual { num_data: 1.5, str_data: "one".into() });
        assert!(out[0].rows[0].duals[1].num_data.is_nan());
        assert_eq!(out[0].rows[1], row(&[(0.0, ""), (-0.25, "ünï")]));
        // Byte for byte what prost writes for the same rows (NaN aside, which never compares equal).
        let plain =
            pb::BundledRows { rows: vec![row(&[(1.5, "one"), (0.0, "")]), row(&[(0.0, ""), (-0.25, "ünï")])] };
        let batch = decode(&plain.encode_to_vec(), &[DataType::Dual, DataType::Dual]).unwrap();
        let mut bytes = Vec::new();
        encode(&batch, MAX_RESPONSE_BYTES, |m| {
            bytes.extend_from_slice(&m.0);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(bytes, plain.encode_to_vec());
    }

    #[test]
    fn wrong_column_counts_and_bad_bytes_are_named() {
        let message = pb::BundledRows { rows: vec![row(&[(1.0, "")]), row(&[])] };
        let err = decode(&message.encode_to_vec(), &[DataType::Numeric]).unwrap_err();
        assert_eq!(err, DecodeError::Columns { row: 1, found: 0, expected: 1 });
        assert!(err.to_string().contains("row 1") && err.to_string().contains("0 column(s)"), "{err}");
        assert!(matches!(decode(&[0x0a, 0xff, 0x01], &[DataType::Numeric]), Err(DecodeError::Malformed(_))));
        let not_utf8 = [0x0a, 0x05, 0x0a, 0x03, 0x12, 0x01, 0xff];
        assert!(decode(&not_utf8, &[DataType::Text]).unwrap_err().to_string().contains("UTF-8"));
        assert!(decode(&not_utf8, &[DataType::Numeric]).is_ok(), "numbers ignore the text part");
    }

    #[test]
    fn messages_stay_under_the_byte_cap_and_keep_order() {
        let mut strings = Strings::with_capacity(1000);
        for i in 0..1000 {
            strings.push(&format!("{i:0>100}")).unwrap();
        }
        let batch = Batch { rows: 1000, columns: vec![Column::Text(strings)] };
        let out = messages(&batch, 10_000);
        assert!(out.len() > 10);
        assert!(out.iter().all(|m| m.encoded_len() <= 10_000));
        let values: Vec<String> = out.iter().flat_map(|m| &m.rows).map(|r| r.duals[0].str_data.clone()).collect();
        assert_eq!(values.len(), 1000);
        assert_eq!(values[999], format!("{:0>100}", 999));
    }

    #[test]
    fn a_row_qlik_cannot_take_is_refused() {
        let mut strings = Strings::with_capacity(1);
        strings.push(&"x".repeat(QLIK_MESSAGE_LIMIT)).unwrap();
        let batch = Batch { rows: 1, columns: vec![Column::Text(strings)] };
        let result = encode(&batch, MAX_RESPONSE_BYTES, |_| Ok::<_, ()>(()));
        assert!(matches!(result, Err(EncodeError::OversizedRow(n)) if n > QLIK_MESSAGE_LIMIT));
    }
}
