//! Differential tests of the row codec against prost: generated valid `BundledRows` encodings (any
//! field order, repeated scalars, unknown fields of every wire type with groups at every level,
//! non-minimal varints, every f64 bit pattern, empty and multi-byte strings, empty rows and
//! messages) must decode to what prost decodes; mutated and truncated bytes must never panic, and
//! are refused exactly when protobuf refuses them, or read as it reads them.

use proptest::prelude::*;
use prost::Message;

use crate::model::{Batch, Column, DataType, Strings};
use crate::wire::codec::{DecodeError, EncodedRows, MAX_RESPONSE_BYTES, decode, encode};
use crate::wire::format as wf;
use crate::wire::pb;

/// An unknown field: its number and value.
#[derive(Clone, Debug)]
enum Unknown {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
    Group(u32, Vec<Unknown>),
}

/// A field of a `Dual`.
#[derive(Clone, Debug)]
enum DualField {
    Number(u64),
    Text(String),
    Unknown(Unknown),
}

/// A field of a `Row`: a dual, or something unknown.
#[derive(Clone, Debug)]
enum RowField {
    Dual(Vec<DualField>),
    Unknown(Unknown),
}

/// A field of a `BundledRows`.
#[derive(Clone, Debug)]
enum BundleField {
    Row(Vec<RowField>),
    Unknown(Unknown),
}

/// Field numbers a message does not know: from `first` (2 in `BundledRows` and `Row`, 3 in
/// `Dual`) to the largest protobuf allows.
fn unknown_number(first: u32) -> impl Strategy<Value = u32> {
    prop_oneof![2 => Just(first), 2 => first..20, 1 => Just(1000), 1 => Just((1 << 29) - 1)]
}

/// Payloads of unknown length-delimited fields; 254 bytes has the length varint `fe 01`, which
/// once looked like a short text after an empty dual.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..20), Just(vec![b'x'; 254]), Just(vec![b'x'; 126])]
}

fn unknown(first: u32) -> impl Strategy<Value = Unknown> {
    let leaf = prop_oneof![
        (unknown_number(first), any::<u64>()).prop_map(|(f, v)| Unknown::Varint(f, v)),
        (unknown_number(first), any::<u64>()).prop_map(|(f, v)| Unknown::Fixed64(f, v)),
        (unknown_number(first), any::<u32>()).prop_map(|(f, v)| Unknown::Fixed32(f, v)),
        (unknown_number(first), payload()).prop_map(|(f, v)| Unknown::Bytes(f, v)),
    ];
    let groups = leaf.clone().prop_recursive(3, 12, 4, move |inner| {
        (unknown_number(first), proptest::collection::vec(inner, 0..4)).prop_map(|(f, v)| Unknown::Group(f, v))
    });
    prop_oneof![3 => leaf, 1 => groups]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,5}", ".{0,8}", "[é€😀x]{60,140}"]
}

/// Every f64 bit pattern, with the special ones often.
fn number_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(0u64),
        Just((-0.0f64).to_bits()),
        Just(f64::NAN.to_bits()),
        Just(f64::INFINITY.to_bits()),
        Just(1.5f64.to_bits()),
    ]
}

fn dual_fields() -> impl Strategy<Value = Vec<DualField>> {
    proptest::collection::vec(
        prop_oneof![
            4 => number_bits().prop_map(DualField::Number),
            4 => text().prop_map(DualField::Text),
            1 => unknown(3).prop_map(DualField::Unknown),
        ],
        0..4,
    )
}

/// A row of exactly `columns` duals, with unknown fields among them.
fn row(columns: usize) -> impl Strategy<Value = Vec<RowField>> {
    (proptest::collection::vec(dual_fields(), columns), proptest::collection::vec((0..=columns, unknown(2)), 0..3))
        .prop_map(|(duals, unknowns)| {
            let mut fields: Vec<RowField> = duals.into_iter().map(RowField::Dual).collect();
            for (at, unknown) in unknowns.into_iter().rev() {
                fields.insert(at.min(fields.len()), RowField::Unknown(unknown));
            }
            fields
        })
}

fn data_type() -> impl Strategy<Value = DataType> {
    prop_oneof![Just(DataType::Numeric), Just(DataType::Text), Just(DataType::Dual)]
}

/// Parameter types, and a message whose rows have one dual per parameter.
fn bundle() -> impl Strategy<Value = (Vec<DataType>, Vec<BundleField>)> {
    proptest::collection::vec(data_type(), 0..4).prop_flat_map(|types| {
        let columns = types.len();
        let field =
            prop_oneof![5 => row(columns).prop_map(BundleField::Row), 1 => unknown(2).prop_map(BundleField::Unknown)];
        (Just(types), proptest::collection::vec(field, 0..6))
    })
}

/// Writes messages, each key and length padded to a non-minimal varint as `pad` says.
struct Writer<'a> {
    out: Vec<u8>,
    pad: &'a [u8],
    next: usize,
}

impl Writer<'_> {
    fn padding(&mut self) -> u8 {
        let pad = self.pad.get(self.next % self.pad.len().max(1)).copied().unwrap_or(0);
        self.next += 1;
        pad
    }

    /// A varint of `value` with `extra` needless continuation bytes (never past 10 bytes).
    fn varint(&mut self, mut value: u64) {
        let len = prost::encoding::encoded_len_varint(value);
        let extra = usize::from(self.padding()).min(10 - len);
        for _ in 0..len + extra - 1 {
            self.out.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.out.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field << 3 | u32::from(wire_type)));
    }

    fn delimited(&mut self, field: u32, payload: impl FnOnce(&mut Self)) {
        let mut inner = Writer { out: Vec::new(), pad: self.pad, next: self.next };
        payload(&mut inner);
        self.next = inner.next;
        self.key(field, wf::LENGTH_DELIMITED);
        self.varint(inner.out.len() as u64);
        self.out.extend_from_slice(&inner.out);
    }

    fn unknown(&mut self, unknown: &Unknown) {
        match unknown {
            Unknown::Varint(f, v) => {
                self.key(*f, wf::VARINT);
                self.varint(*v);
            }
            Unknown::Fixed64(f, v) => {
                self.key(*f, wf::FIXED64);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            Unknown::Fixed32(f, v) => {
                self.key(*f, wf::FIXED32);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            Unknown::Bytes(f, v) => self.delimited(*f, |w| w.out.extend_from_slice(v)),
            Unknown::Group(f, fields) => {
                self.key(*f, wf::START_GROUP);
                for field in fields {
                    self.unknown(field);
                }
                self.key(*f, wf::END_GROUP);
            }
        }
    }

    fn bundle(&mut self, fields: &[BundleField]) {
        for field in fields {
            match field {
                BundleField::Unknown(u) => self.unknown(u),
                BundleField::Row(row) => self.delimited(1, |w| {
                    for field in row {
                        match field {
                            RowField::Unknown(u) => w.unknown(u),
                            RowField::Dual(dual) => w.delimited(1, |w| w.dual(dual)),
                        }
                    }
                }),
            }
        }
    }

    fn dual(&mut self, fields: &[DualField]) {
        for field in fields {
            match field {
                DualField::Number(bits) => {
                    self.key(1, wf::FIXED64);
                    self.out.extend_from_slice(&bits.to_le_bytes());
                }
                DualField::Text(text) => self.delimited(2, |w| w.out.extend_from_slice(text.as_bytes())),
                DualField::Unknown(u) => self.unknown(u),
            }
        }
    }
}

fn encode_model(fields: &[BundleField], pad: &[u8]) -> Vec<u8> {
    let mut writer = Writer { out: Vec::new(), pad, next: 0 };
    writer.bundle(fields);
    writer.out
}

/// What protobuf reads from `bytes` for parameters `types`: prost on the message with known fields
/// of another wire type left out (as protobuf's own parsers leave them), then the column count.
fn reference(bytes: &[u8], types: &[DataType]) -> Result<pb::BundledRows, String> {
    let normalized = wf::normalize(bytes, wf::BUNDLED_ROWS).map_err(|e| e.to_string())?;
    let message = pb::BundledRows::decode(&normalized[..]).map_err(|e| e.to_string())?;
    if let Some(row) = message.rows.iter().position(|r| r.duals.len() != types.len()) {
        return Err(format!("row {row} has the wrong column count"));
    }
    Ok(message)
}

/// The rows of a decoded batch, as protobuf messages, to compare with prost's reading.
fn rows_of(batch: &Batch) -> Vec<Vec<(u64, String)>> {
    let text = |s: &Strings, i: usize| String::from_utf8(s.get(i).to_vec()).expect("utf-8");
    (0..batch.rows)
        .map(|i| {
            batch
                .columns
                .iter()
                .map(|column| match column {
                    Column::Numeric(n) => (n[i].to_bits(), String::new()),
                    Column::Text(s) => (0, text(s, i)),
                    Column::Dual(n, s) => (n[i].to_bits(), text(s, i)),
                })
                .collect()
        })
        .collect()
}

/// What prost's reading means for columns of `types`.
fn expected_rows(message: &pb::BundledRows, types: &[DataType]) -> Vec<Vec<(u64, String)>> {
    message
        .rows
        .iter()
        .map(|row| {
            row.duals
                .iter()
                .zip(types)
                .map(|(dual, t)| match t {
                    DataType::Numeric => (dual.num_data.to_bits(), String::new()),
                    DataType::Text => (0, dual.str_data.clone()),
                    DataType::Dual => (dual.num_data.to_bits(), dual.str_data.clone()),
                })
                .collect()
        })
        .collect()
}

/// The codec and protobuf agree on `bytes`: both refuse, or both read the same rows.
fn agree(bytes: &[u8], types: &[DataType]) -> Result<(), TestCaseError> {
    let ours = decode(bytes, types);
    match (reference(bytes, types), ours) {
        (Ok(message), Ok(batch)) => {
            prop_assert_eq!(batch.rows, message.rows.len());
            prop_assert_eq!(rows_of(&batch), expected_rows(&message, types));
        }
        (Err(_), Err(_)) => {}
        (Ok(message), Err(error)) => {
            prop_assert!(false, "protobuf reads {:?} but the codec refuses: {}", message, error)
        }
        (Err(reason), Ok(batch)) => {
            prop_assert!(false, "protobuf refuses ({}) but the codec reads {} rows", reason, batch.rows)
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn valid_encodings_decode_as_prost_decodes_them(
        (types, fields) in bundle(),
        pad in proptest::collection::vec(prop_oneof![6 => Just(0u8), 1 => 1u8..4], 1..8),
    ) {
        let bytes = encode_model(&fields, &pad);
        let message = pb::BundledRows::decode(&bytes[..]);
        prop_assert!(message.is_ok(), "prost reads every generated encoding: {:?}", message);
        let batch = decode(&bytes, &types);
        prop_assert!(batch.is_ok(), "the codec refuses a valid encoding: {:?}", batch);
        agree(&bytes, &types)?;
    }

    #[test]
    fn mutated_bytes_never_panic_and_are_read_as_protobuf_reads_them(
        (types, fields) in bundle(),
        mutations in proptest::collection::vec((0u8..4, any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode_model(&fields, &[0]);
        for (kind, at, byte) in mutations {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] ^= byte | 1,
                1 => bytes.truncate(i),
                2 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        agree(&bytes, &types)?;
    }

    #[test]
    fn every_f64_bit_pattern_round_trips(bits in proptest::collection::vec(number_bits(), 0..50), text in text()) {
        let numbers: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
        let mut strings = Strings::with_capacity(numbers.len());
        for _ in &numbers {
            strings.push(&text).expect("small");
        }
        let rows = numbers.len();
        for batch in [
            Batch { rows, columns: vec![Column::Numeric(numbers.clone())] },
            Batch { rows, columns: vec![Column::Dual(numbers.clone(), strings.clone()), Column::Numeric(numbers.clone())] },
        ] {
            let mut bytes = Vec::new();
            encode(&batch, MAX_RESPONSE_BYTES, |m: EncodedRows| { bytes.extend_from_slice(&m.0); Ok::<_, ()>(()) })
                .expect("encodes");
            let read = pb::BundledRows::decode(&bytes[..]).expect("prost reads it");
            let read_bits: Vec<u64> = read.rows.iter().map(|r| r.duals[0].num_data.to_bits()).collect();
            prop_assert_eq!(&read_bits, &bits);
            let types: Vec<DataType> = batch.columns.iter().map(Column::data_type).collect();
            let again = decode(&bytes, &types).expect("decodes");
            prop_assert_eq!(rows_of(&again), rows_of(&batch));
        }
    }
}

#[test]
fn an_unknown_field_after_an_empty_dual_is_not_read_as_text() {
    // Row: an empty dual (`0a 00`), then unknown field 2 of 254 bytes (`12 fe 01 ...`).
    let mut row = vec![0x0a, 0x00, 0x12, 0xfe, 0x01];
    row.extend(std::iter::repeat_n(b'x', 254));
    let mut message = vec![0x0a, 0x83, 0x02];
    message.extend_from_slice(&row);
    let batch = decode(&message, &[DataType::Text]).expect("valid");
    assert_eq!(rows_of(&batch), [[(0, String::new())]]);
    assert_eq!(reference(&message, &[DataType::Text]).expect("valid").rows[0].duals.len(), 1);
}

#[test]
fn refusals_name_the_problem() {
    let refused = |bytes: &[u8]| match decode(bytes, &[DataType::Numeric]) {
        Err(DecodeError::Malformed(reason)) => reason,
        other => panic!("refused, not {other:?}"),
    };
    assert!(refused(&[0x02, 0x00]).contains("number 0"));
    assert!(refused(&[0x1b]).contains("cut short"));
    assert!(refused(&[0x1c]).contains("never opened"));
    assert!(refused(&[0x0a, 0x05, 0x0a, 0x03, 0x12, 0x01, 0xff]).contains("UTF-8"));
    // A replaced strData must be UTF-8 too.
    let replaced = [0x0a, 0x08, 0x0a, 0x06, 0x12, 0x01, 0xff, 0x12, 0x01, b'a'];
    assert!(decode(&replaced, &[DataType::Text]).unwrap_err().to_string().contains("UTF-8"));
}

#[test]
fn negative_zero_keeps_its_sign() {
    for batch in [
        Batch { rows: 1, columns: vec![Column::Numeric(vec![-0.0])] },
        Batch {
            rows: 1,
            columns: vec![Column::Dual(vec![-0.0], Strings { data: b"z".to_vec(), offsets: vec![0, 1] })],
        },
    ] {
        let mut bytes = Vec::new();
        encode(&batch, MAX_RESPONSE_BYTES, |m: EncodedRows| {
            bytes.extend_from_slice(&m.0);
            Ok::<_, ()>(())
        })
        .expect("encodes");
        let read = pb::BundledRows::decode(&bytes[..]).expect("prost reads it");
        assert!(read.rows[0].duals[0].num_data.is_sign_negative(), "{bytes:02x?}");
    }
}
