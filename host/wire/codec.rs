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
//! `Dual { double numData = 1; string strData = 2 }`. Fields at their default value (+0.0, "") are
//! not written, as every protobuf encoder does. Reading accepts exactly what protobuf accepts and
//! reads it the same way (`format` has the rules; the tests compare with prost on generated
//! and mutated encodings).

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::format::{self as wf, WireError};
use crate::model::{Batch, Column, DataType, Strings};

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

/// Key of field 1, length-delimited: a `Row` in `BundledRows`, a `Dual` in `Row`.
const KEY_ITEM: u8 = (1 << 3) | wf::LENGTH_DELIMITED;
/// Key of `Dual.numData`.
const KEY_NUMBER: u8 = (1 << 3) | wf::FIXED64;
/// Key of `Dual.strData`.
const KEY_TEXT: u8 = (2 << 3) | wf::LENGTH_DELIMITED;

/// Recursion budget of the fields of a `BundledRows`, a `Row` and a `Dual`, as prost counts it.
const DEPTH_BUNDLE: u32 = wf::RECURSION_LIMIT;
const DEPTH_ROW: u32 = wf::RECURSION_LIMIT - 1;
const DEPTH_DUAL: u32 = wf::RECURSION_LIMIT - 2;

impl From<WireError> for DecodeError {
    fn from(error: WireError) -> Self {
        Self::Malformed(error.0)
    }
}

fn malformed(reason: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(reason.into())
}

/// One `Dual`: its number (0.0 when absent) and its text bytes ("" when absent). As in protobuf,
/// the last of repeated values wins; every text value must be UTF-8, replaced ones included (the
/// last one is checked with its column).
#[inline(always)]
fn dual(mut buf: &[u8]) -> Result<(f64, &[u8]), DecodeError> {
    let (mut number, mut text) = (0.0, &[][..]);
    while !buf.is_empty() {
        let (field, wire_type) = wf::key(&mut buf)?;
        match (field, wire_type) {
            (1, wf::FIXED64) => {
                let (bytes, rest) = buf.split_first_chunk::<8>().ok_or_else(|| malformed("numData is cut short"))?;
                number = f64::from_le_bytes(*bytes);
                buf = rest;
            }
            (2, wf::LENGTH_DELIMITED) => {
                // The value being replaced must be UTF-8 too ("" always is).
                if !text.is_empty() {
                    utf8(text)?;
                }
                text = wf::delimited(&mut buf)?;
            }
            _ => wf::skip(&mut buf, field, wire_type, DEPTH_DUAL)?,
        }
    }
    Ok((number, text))
}

/// Fails unless `text` is UTF-8, as proto3 requires of every string value.
pub fn utf8(text: &[u8]) -> Result<(), DecodeError> {
    std::str::from_utf8(text).map(drop).map_err(|_| malformed("a string value is not UTF-8"))
}

/// A numeric `Dual` in the layout every encoder writes — `0a 09 09 <8 bytes>`, or `0a 00` for
/// 0.0 — taken off the front of `row` without the general field loop; `None` for anything else,
/// which the general path then reads.
#[inline(always)]
fn plain_number(row: &mut &[u8]) -> Option<f64> {
    match *row {
        [KEY_ITEM, 9, KEY_NUMBER, rest @ ..] => {
            let (bytes, rest) = rest.split_first_chunk::<8>()?;
            *row = rest;
            Some(f64::from_le_bytes(*bytes))
        }
        [KEY_ITEM, 0, rest @ ..] => {
            *row = rest;
            Some(0.0)
        }
        _ => None,
    }
}

/// A text `Dual` of under 126 bytes in the layout every encoder writes — `0a <n+2> 12 <n>
/// <bytes>`, or `0a 00` for "" — taken off the front of `row`; `None` for anything else.
#[inline(always)]
fn plain_text<'a>(row: &mut &'a [u8]) -> Option<&'a [u8]> {
    match **row {
        // Both lengths one-byte varints, the outer one exactly the inner field's size.
        [KEY_ITEM, outer, KEY_TEXT, inner, ref rest @ ..] if inner < 0x7e && outer == inner + 2 => {
            let (text, rest) = rest.split_at_checked(usize::from(inner))?;
            *row = rest;
            Some(text)
        }
        [KEY_ITEM, 0, ref rest @ ..] => {
            *row = rest;
            Some(&[])
        }
        _ => None,
    }
}

/// Appends `text` to a string column; [`decode`] checks the column is UTF-8 (as proto3 requires)
/// once it is whole.
#[inline(always)]
fn push_text(strings: &mut Strings, text: &[u8]) -> Result<(), DecodeError> {
    strings.push_bytes(text).map_err(malformed)
}

/// Where a text column's values can go instead of onto its `Strings` ([`decode_coded`]): e.g.
/// the distinct values and codes of a call's kept rows, which take a value equal to one already
/// seen as its code, without copying it or checking it again.
pub trait TextSink {
    /// Takes `text`, the column's value in the next row, or declines it: then it and every
    /// later value of the column go onto the column's `Strings`. A value the sink keeps is
    /// checked by the sink ([`utf8`]); one it declines, by the decoder.
    fn take(&mut self, text: &[u8]) -> Result<bool, DecodeError>;
}

/// No sink: every value onto its column ([`decode_onto`]).
impl TextSink for std::convert::Infallible {
    fn take(&mut self, _: &[u8]) -> Result<bool, DecodeError> {
        match *self {}
    }
}

/// `text`, column `index`'s value, to the column's sink in `sinks` if it has one that takes it,
/// else onto `strings`.
#[inline(always)]
fn put_text<S: TextSink>(
    strings: &mut Strings,
    sinks: &mut [Option<S>],
    index: usize,
    text: &[u8],
) -> Result<(), DecodeError> {
    if let Some(Some(sink)) = sinks.get_mut(index)
        && sink.take(text)?
    {
        return Ok(());
    }
    push_text(strings, text)
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
    // Sized once: growing columns row by row would copy them over and over.
    let rows = count_rows(message);
    let mut columns: Vec<Column> = params.iter().map(|&t| Column::with_capacity(t, rows)).collect();
    let texts = params.iter().filter(|&&t| t != DataType::Numeric).count();
    for strings in columns.iter_mut().filter_map(Column::strings_mut) {
        // The message's size bounds all its text together.
        strings.data.reserve(message.len() / texts);
    }
    let rows = decode_onto(message, &mut columns)?;
    Ok(Batch { rows, columns })
}

/// Decodes a `BundledRows` onto the end of `columns` (one per parameter, of its type), as a
/// per-call function keeps every row of the call: no batch of the message's own to copy over.
/// Every row must carry exactly one dual per parameter; the rows added, or why not (when not,
/// `columns` may hold part of the message).
pub fn decode_onto(message: &[u8], columns: &mut [Column]) -> Result<usize, DecodeError> {
    decode_coded::<std::convert::Infallible>(message, columns, &mut [])
}

/// [`decode_onto`], with each text (or dual) column's values offered to its sink in `sinks`
/// (where `sinks` has one at the column's place) before they go onto the column.
pub fn decode_coded<S: TextSink>(
    message: &[u8],
    columns: &mut [Column],
    sinks: &mut [Option<S>],
) -> Result<usize, DecodeError> {
    // The texts each column held before (a dual's may be fewer than its numbers, when the
    // caller keeps the texts elsewhere between messages).
    let before: Vec<usize> = columns.iter().map(|c| c.strings().map_or(0, Strings::len)).collect();
    let rows = decode_into(message, columns, sinks)?;
    for (column, first) in columns.iter().zip(before) {
        if let Some(strings) = column.strings() {
            strings.check_from(first).map_err(|_| malformed("a string value is not UTF-8"))?;
        }
    }
    Ok(rows)
}

/// How many rows `message` holds, by skipping over them (a guess when it is malformed, which
/// decoding then reports).
fn count_rows(mut message: &[u8]) -> usize {
    let mut rows = 0;
    while let [KEY_ITEM, ..] = message {
        message = &message[1..];
        match wf::delimited(&mut message) {
            Ok(_) => rows += 1,
            Err(_) => break,
        }
    }
    rows
}

/// Appends the rows of `message` to `columns`; the row count, or why not.
fn decode_into<S: TextSink>(
    mut message: &[u8],
    columns: &mut [Column],
    sinks: &mut [Option<S>],
) -> Result<usize, DecodeError> {
    let mut rows = 0;
    while !message.is_empty() {
        let (field, wire_type) = wf::key(&mut message)?;
        if (field, wire_type) != (1, wf::LENGTH_DELIMITED) {
            wf::skip(&mut message, field, wire_type, DEPTH_BUNDLE)?;
            continue;
        }
        let mut row = wf::delimited(&mut message)?;
        let mut index = 0;
        while !row.is_empty() {
            match columns.get_mut(index) {
                Some(Column::Numeric(numbers)) if let Some(number) = plain_number(&mut row) => {
                    numbers.push(number);
                    index += 1;
                    continue;
                }
                Some(Column::Text(strings)) if let Some(text) = plain_text(&mut row) => {
                    put_text(strings, sinks, index, text)?;
                    index += 1;
                    continue;
                }
                _ => {}
            }
            let (field, wire_type) = wf::key(&mut row)?;
            if (field, wire_type) != (1, wf::LENGTH_DELIMITED) {
                wf::skip(&mut row, field, wire_type, DEPTH_ROW)?;
                continue;
            }
            let (number, text) = dual(wf::delimited(&mut row)?)?;
            match columns.get_mut(index) {
                Some(Column::Numeric(numbers)) => {
                    // Unused, but protobuf would refuse the message for it.
                    if !text.is_empty() {
                        utf8(text)?;
                    }
                    numbers.push(number);
                }
                Some(Column::Text(strings)) => {
                    put_text(strings, sinks, index, text)?;
                }
                Some(Column::Dual(numbers, strings)) => {
                    numbers.push(number);
                    put_text(strings, sinks, index, text)?;
                }
                // Too many values: reported with the count below, once it is known.
                None => utf8(text)?,
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

/// True for the one `double` a proto3 encoder leaves out: +0.0. `-0.0 == 0.0`, but its sign is
/// data (protobuf's own encoders compare the bits, too).
#[inline(always)]
fn is_default(n: f64) -> bool {
    n.to_bits() == 0
}

fn varint_len(value: usize) -> usize {
    prost::encoding::encoded_len_varint(value as u64)
}

/// The encoded size of value `i` of `column` as a `Dual` (without its own key and length).
fn dual_len(column: &Column, i: usize) -> usize {
    let number = |n: f64| if is_default(n) { 0 } else { 9 };
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

/// Appends `value` as a varint. The message buffer is a plain `Vec`, whose small appends inline
/// to a store or two, where `BytesMut`'s generic ones cost a call and a `memcpy` each.
#[inline(always)]
fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline(always)]
fn put_dual(out: &mut Vec<u8>, column: &Column, i: usize) {
    let number = |out: &mut Vec<u8>, n: f64| {
        if !is_default(n) {
            out.push(KEY_NUMBER);
            out.extend_from_slice(&n.to_le_bytes());
        }
    };
    let text = |out: &mut Vec<u8>, s: &Strings| {
        let bytes = s.get(i);
        if !bytes.is_empty() {
            out.push(KEY_TEXT);
            put_varint(out, bytes.len());
            out.extend_from_slice(bytes);
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
    let numbers: Vec<&[f64]> = batch
        .columns
        .iter()
        .map_while(|c| match c {
            Column::Numeric(numbers) => Some(numbers.as_slice()),
            _ => None,
        })
        .collect();
    if numbers.len() == batch.columns.len() && numbers.len() <= 10 {
        return encode_numbers(&numbers, batch.rows, max_bytes, emit);
    }
    let mut message: Vec<u8> = Vec::new();
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
            emit(EncodedRows(Bytes::from(std::mem::take(&mut message)))).map_err(EncodeError::Emit)?;
        }
        if message.capacity() - message.len() < size {
            message.reserve(size.max(max_bytes.min(batch.rows.saturating_sub(i) * size)));
        }
        message.push(KEY_ITEM);
        put_varint(&mut message, row_len);
        for (&len, column) in dual_lens.iter().zip(&batch.columns) {
            message.push(KEY_ITEM);
            put_varint(&mut message, len);
            put_dual(&mut message, column, i);
        }
    }
    if !message.is_empty() {
        emit(EncodedRows(Bytes::from(message))).map_err(EncodeError::Emit)?;
    }
    Ok(())
}

/// [`encode`] for batches of at most ten numeric columns, the common case: every row is under
/// 128 bytes, so its size is one byte and each value is `0a 09 09 <8 bytes>` or `0a 00` for 0.0.
fn encode_numbers<E>(
    columns: &[&[f64]],
    rows: usize,
    max_bytes: usize,
    mut emit: impl FnMut(EncodedRows) -> Result<(), E>,
) -> Result<(), EncodeError<E>> {
    let mut message: Vec<u8> = Vec::new();
    for i in 0..rows {
        let row_len: usize = columns.iter().map(|c| if is_default(c[i]) { 2 } else { 11 }).sum();
        if message.len() + 2 + row_len > max_bytes && !message.is_empty() {
            emit(EncodedRows(Bytes::from(std::mem::take(&mut message)))).map_err(EncodeError::Emit)?;
        }
        if message.capacity() - message.len() < 2 + row_len {
            message.reserve(max_bytes.min((rows - i) * (2 + 11 * columns.len())));
        }
        message.extend_from_slice(&[KEY_ITEM, row_len as u8]);
        for column in columns {
            let n = column[i];
            if is_default(n) {
                message.extend_from_slice(&[KEY_ITEM, 0]);
            } else {
                message.extend_from_slice(&[KEY_ITEM, 9, KEY_NUMBER]);
                message.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    if !message.is_empty() {
        emit(EncodedRows(Bytes::from(message))).map_err(EncodeError::Emit)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "codec_differential.rs"]
mod differential;

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::wire::pb;

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
    fn numeric_columns_take_the_fast_paths_and_match_prost() {
        let values = [1.5, 0.0, -0.25, f64::INFINITY, 1e300, -7.0];
        let original =
            pb::BundledRows { rows: values.iter().map(|&n| row(&[(n, ""), (n * 2.0, ""), (0.0, "")])).collect() };
        let bytes = original.encode_to_vec();
        let batch = decode(&bytes, &[DataType::Numeric; 3]).unwrap();
        assert_eq!(batch.columns[0], Column::Numeric(values.to_vec()));
        let mut out = Vec::new();
        encode(&batch, MAX_RESPONSE_BYTES, |m| {
            out.extend_from_slice(&m.0);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(out, bytes, "byte for byte what prost writes");
        // A dual with an unknown field before its number leaves the fast path and still decodes.
        let usual = [KEY_ITEM, 11, KEY_ITEM, 9, KEY_NUMBER, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f];
        let long_way =
            [&usual[..], &[KEY_ITEM, 13, KEY_ITEM, 11, 0x28, 0x01, KEY_NUMBER][..], &2.0f64.to_le_bytes()].concat();
        let batch = decode(&long_way, &[DataType::Numeric]).unwrap();
        assert_eq!(batch.columns[0], Column::Numeric(vec![1.5, 2.0]));
        // Split below the cap, in order.
        let many = Batch { rows: 10_000, columns: vec![Column::Numeric((0..10_000).map(f64::from).collect())] };
        let split = messages(&many, 4096);
        assert!(split.len() > 20 && split.iter().all(|m| m.encoded_len() <= 4096));
        let numbers: Vec<f64> = split.iter().flat_map(|m| &m.rows).map(|r| r.duals[0].num_data).collect();
        assert_eq!(numbers, (0..10_000).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn text_of_every_length_decodes_and_bad_utf8_is_refused() {
        let texts: Vec<String> =
            [0, 1, 125, 126, 127, 128, 300].iter().map(|&n| "é".repeat(n / 2) + &"x".repeat(n % 2)).collect();
        let original = pb::BundledRows { rows: texts.iter().map(|t| row(&[(0.0, t)])).collect() };
        let batch = decode(&original.encode_to_vec(), &[DataType::Text]).unwrap();
        let Column::Text(strings) = &batch.columns[0] else { panic!("text") };
        let decoded: Vec<&str> = strings
            .offsets
            .windows(2)
            .map(|w| std::str::from_utf8(&strings.data[w[0] as usize..w[1] as usize]).unwrap())
            .collect();
        assert_eq!(decoded, texts);

        let bad = [KEY_ITEM, 5, KEY_ITEM, 3, KEY_TEXT, 1, 0xff];
        assert!(decode(&bad, &[DataType::Text]).unwrap_err().to_string().contains("not UTF-8"));
        // "é" split across two values: each half is invalid even though the whole buffer is not.
        let split = [KEY_ITEM, 5, KEY_ITEM, 3, KEY_TEXT, 1, 0xc3, KEY_ITEM, 5, KEY_ITEM, 3, KEY_TEXT, 1, 0xa9];
        assert!(decode(&split, &[DataType::Text]).unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn messages_decoded_onto_kept_columns_give_what_one_message_of_all_rows_gives() {
        let first = pb::BundledRows { rows: vec![row(&[(1.0, "a"), (2.0, "x")]), row(&[(0.0, "bé"), (-4.5, "")])] };
        let second = pb::BundledRows { rows: vec![row(&[(7.0, ""), (f64::INFINITY, "ünï")])] };
        let types = [DataType::Text, DataType::Dual];
        let mut kept: Vec<Column> = types.iter().map(|&t| Column::with_capacity(t, 0)).collect();
        assert_eq!(decode_onto(&first.encode_to_vec(), &mut kept), Ok(2));
        assert_eq!(decode_onto(&second.encode_to_vec(), &mut kept), Ok(1));
        // Two encoded messages back to back are one message of both's rows.
        let whole = decode(&[first.encode_to_vec(), second.encode_to_vec()].concat(), &types).unwrap();
        assert_eq!((whole.rows, &whole.columns), (3, &kept));
        // A later message's text is checked as a first one's is, "é" split across messages too.
        let texts = || [Column::with_capacity(DataType::Text, 0)];
        decode_onto(&first.encode_to_vec(), &mut texts()).expect_err("two values a row");
        let text = |bytes: &[u8]| {
            [
                &[KEY_ITEM, 4 + bytes.len() as u8, KEY_ITEM, 2 + bytes.len() as u8, KEY_TEXT, bytes.len() as u8][..],
                bytes,
            ]
            .concat()
        };
        for (earlier, later) in [(&b"a"[..], &b"\xff"[..]), (b"a", b"\xc3"), (b"\xc3", b"\xa9")] {
            let mut kept = texts();
            let earlier = decode_onto(&text(earlier), &mut kept);
            let refused = earlier.and_then(|_| decode_onto(&text(later), &mut kept));
            assert!(refused.unwrap_err().to_string().contains("not UTF-8"), "{later:?} after");
        }
        // A dual column whose texts the caller takes away between messages (its numbers kept):
        // each message's texts are checked from their own first.
        let mut dual = [Column::with_capacity(DataType::Dual, 0)];
        for message in [&first, &second, &first] {
            let [Column::Dual(numbers, strings)] = &mut dual else { unreachable!() };
            strings.clear();
            let rows = numbers.len();
            let single = pb::BundledRows {
                rows: message.rows.iter().map(|r| pb::Row { duals: r.duals[1..].to_vec() }).collect(),
            };
            assert_eq!(decode_onto(&single.encode_to_vec(), &mut dual), Ok(single.rows.len()));
            assert_eq!(dual[0].len(), rows + single.rows.len());
        }
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
        assert!(
            decode(&not_utf8, &[DataType::Numeric]).unwrap_err().to_string().contains("UTF-8"),
            "protobuf refuses the message, whatever the column's type"
        );
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
