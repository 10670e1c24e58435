//! The protobuf wire format as protobuf itself reads it: field keys, skipping unknown fields
//! (groups included), and the rule that a known field sent with another wire type is an unknown
//! field. The row codec reads with these; the request headers are normalized by them before prost
//! decodes them.
//!
//! Reference behaviour (checked against prost by the tests here and in the codec):
//! - a key is a varint of at most `u32::MAX`; field number 0 and wire types 6 and 7 are invalid;
//! - varints are at most 10 bytes, the tenth at most 1 (as prost and protobuf-go read them);
//! - unknown fields of every wire type are skipped, a group up to its matching end-group key;
//! - nesting (messages and groups together) is limited as prost limits it (100 levels);
//! - a known field sent with another wire type is kept as an unknown field, as protobuf's C++,
//!   Java and upb parsers do (prost refuses such a message; Qlik's engine uses protobuf C++).

use bytes::Buf;

/// How deep messages and groups may nest, counted as prost counts it.
pub const RECURSION_LIMIT: u32 = 100;

/// Wire type of a varint.
pub const VARINT: u8 = 0;
/// Wire type of an 8-byte value.
pub const FIXED64: u8 = 1;
/// Wire type of a length-delimited value.
pub const LENGTH_DELIMITED: u8 = 2;
/// Wire type opening a group.
pub const START_GROUP: u8 = 3;
/// Wire type closing a group.
pub const END_GROUP: u8 = 4;
/// Wire type of a 4-byte value.
pub const FIXED32: u8 = 5;

/// Why bytes are not a valid protobuf message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn error(reason: impl Into<String>) -> WireError {
    WireError(reason.into())
}

/// A varint off the front of `buf`; values under 128 (nearly all keys and lengths) take the
/// one-byte path.
#[inline(always)]
pub fn varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    if let Some((&byte, rest)) = buf.split_first()
        && byte < 0x80
    {
        *buf = rest;
        return Ok(u64::from(byte));
    }
    prost::encoding::decode_varint(buf)
        .map_err(|_| error("a varint is cut short, longer than 10 bytes or past 64 bits"))
}

/// A field key off the front of `buf`: its field number and wire type.
#[inline(always)]
pub fn key(buf: &mut &[u8]) -> Result<(u32, u8), WireError> {
    let key = varint(buf)?;
    let key = u32::try_from(key).map_err(|_| error(format!("the field key {key} is out of range")))?;
    let (field, wire_type) = (key >> 3, (key & 7) as u8);
    if field == 0 {
        return Err(error("a field has the number 0, which protobuf forbids"));
    }
    if wire_type > FIXED32 {
        return Err(error(format!("field {field} has the invalid wire type {wire_type}")));
    }
    Ok((field, wire_type))
}

/// A length-delimited payload off the front of `buf`.
#[inline(always)]
pub fn delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = varint(buf)?;
    let len = usize::try_from(len).map_err(|_| error("a length does not fit in memory"))?;
    let (payload, rest) =
        buf.split_at_checked(len).ok_or_else(|| error("a length runs past the end of its message"))?;
    *buf = rest;
    Ok(payload)
}

/// Skips the value of field `field` of wire type `wire_type` (its key already read). `depth` is
/// what prost calls the recursion budget left: 100 for the fields of a top-level message, one less
/// per enclosing message or group.
pub fn skip(buf: &mut &[u8], field: u32, wire_type: u8, depth: u32) -> Result<(), WireError> {
    if depth == 0 {
        return Err(error("fields nest deeper than protobuf's recursion limit of 100"));
    }
    let fixed = match wire_type {
        VARINT => return varint(buf).map(drop),
        LENGTH_DELIMITED => return delimited(buf).map(drop),
        FIXED64 => 8,
        FIXED32 => 4,
        START_GROUP => loop {
            let (inner, inner_type) = key(buf)?;
            if inner_type == END_GROUP {
                if inner != field {
                    return Err(error(format!("group {field} is closed as group {inner}")));
                }
                return Ok(());
            }
            skip(buf, inner, inner_type, depth - 1)?;
        },
        _ => return Err(error(format!("group {field} is closed but was never opened"))),
    };
    if buf.len() < fixed {
        return Err(error(format!("field {field} is cut short")));
    }
    buf.advance(fixed);
    Ok(())
}

/// What a message's known fields are, for [`normalize`]: field number, wire type, and for a
/// message-typed field, the schema of that message.
pub type Schema = &'static [(u32, u8, Option<&'static SchemaRef>)];

/// A nested message's schema (a struct so that schemas may refer to each other).
pub struct SchemaRef(pub Schema);

/// The bytes of a message with every known field sent with another wire type left out, as
/// protobuf's own parsers read it: they keep such a field as an unknown field, which no reader
/// of the message sees. Unknown fields are kept as they are. Refuses what protobuf refuses.
pub fn normalize(message: &[u8], schema: Schema) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(message.len());
    normalize_into(message, schema, RECURSION_LIMIT, &mut out)?;
    Ok(out)
}

fn normalize_into(mut message: &[u8], schema: Schema, depth: u32, out: &mut Vec<u8>) -> Result<(), WireError> {
    while !message.is_empty() {
        let start = message;
        let (field, wire_type) = key(&mut message)?;
        match schema.iter().find(|(known, ..)| *known == field) {
            // A known message field: its own known fields normalized too.
            Some(&(_, expected, Some(nested))) if expected == wire_type => {
                if depth == 0 {
                    return Err(error("messages nest deeper than protobuf's recursion limit of 100"));
                }
                let payload = delimited(&mut message)?;
                let mut inner = Vec::with_capacity(payload.len());
                normalize_into(payload, nested.0, depth - 1, &mut inner)?;
                prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, out);
                prost::encoding::encode_varint(inner.len() as u64, out);
                out.extend_from_slice(&inner);
            }
            // Another wire type than the field's: protobuf keeps it as an unknown field.
            Some(&(_, expected, _)) if expected != wire_type => skip(&mut message, field, wire_type, depth)?,
            // A known scalar field, or an unknown one: kept as it is.
            _ => {
                skip(&mut message, field, wire_type, depth)?;
                out.extend_from_slice(&start[..start.len() - message.len()]);
            }
        }
    }
    Ok(())
}

/// `Parameter { DataType dataType = 1; string name = 2; }`
pub static PARAMETER: SchemaRef = SchemaRef(&[(1, VARINT, None), (2, LENGTH_DELIMITED, None)]);
/// `ScriptRequestHeader { string script = 1; FunctionType functionType = 2; DataType returnType = 3;
/// repeated Parameter params = 4; }`
pub static SCRIPT_REQUEST_HEADER: Schema =
    &[(1, LENGTH_DELIMITED, None), (2, VARINT, None), (3, VARINT, None), (4, LENGTH_DELIMITED, Some(&PARAMETER))];
/// `FunctionRequestHeader { int32 functionId = 1; string version = 2; }`
pub static FUNCTION_REQUEST_HEADER: Schema = &[(1, VARINT, None), (2, LENGTH_DELIMITED, None)];
/// `CommonRequestHeader { string appId = 1; string userId = 2; int64 cardinality = 3; }`
pub static COMMON_REQUEST_HEADER: Schema =
    &[(1, LENGTH_DELIMITED, None), (2, LENGTH_DELIMITED, None), (3, VARINT, None)];
// The row layout, for the tests that compare the codec with prost on normalized messages (the
// codec itself reads rows with `key` and `skip`).
/// `Dual { double numData = 1; string strData = 2; }`
#[cfg(test)]
pub static DUAL: SchemaRef = SchemaRef(&[(1, FIXED64, None), (2, LENGTH_DELIMITED, None)]);
/// `Row { repeated Dual duals = 1; }`
#[cfg(test)]
pub static ROW: SchemaRef = SchemaRef(&[(1, LENGTH_DELIMITED, Some(&DUAL))]);
/// `BundledRows { repeated Row rows = 1; }`
#[cfg(test)]
pub static BUNDLED_ROWS: Schema = &[(1, LENGTH_DELIMITED, Some(&ROW))];

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::wire::pb;

    #[test]
    fn keys_follow_protobufs_rules() {
        assert_eq!(key(&mut &[0x0a][..]), Ok((1, LENGTH_DELIMITED)));
        // Non-minimal, but valid.
        assert_eq!(key(&mut &[0x8a, 0x80, 0x00][..]), Ok((1, LENGTH_DELIMITED)));
        assert!(key(&mut &[0x02][..]).unwrap_err().0.contains("number 0"));
        assert!(key(&mut &[0x0e][..]).unwrap_err().0.contains("wire type 6"));
        assert!(key(&mut &[0x80, 0x80, 0x80, 0x80, 0x10][..]).unwrap_err().0.contains("out of range"));
    }

    #[test]
    fn groups_and_long_varints_are_skipped_as_prost_skips_them() {
        // field 5 group { field 1 varint of 10 bytes; field 6 group {} } field 5 end
        let mut bytes = vec![0x2b, 0x08];
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        bytes.extend_from_slice(&[0x33, 0x34, 0x2c]);
        let mut buf = &bytes[..];
        let (field, wire_type) = key(&mut buf).unwrap();
        assert_eq!(skip(&mut buf, field, wire_type, RECURSION_LIMIT), Ok(()));
        assert!(buf.is_empty());
        // The same as prost: a message of just that unknown group decodes.
        assert!(pb::Empty::decode(&bytes[..]).is_ok());
        // Mismatched end, and an end without a start.
        assert!(skip(&mut &[0x34][..], 5, START_GROUP, 100).is_err());
        assert!(skip(&mut &[][..], 5, END_GROUP, 100).is_err());
    }

    #[test]
    fn nesting_is_limited_where_prost_limits_it() {
        for groups in [98, 99, 100, 101] {
            // `groups` nested groups with a varint in the innermost one, in an otherwise empty message.
            let mut bytes = vec![0x1b; groups];
            bytes.extend_from_slice(&[0x08, 0x01]);
            bytes.extend(std::iter::repeat_n(0x1c, groups));
            let ours = normalize(&bytes, &[]).is_ok();
            assert_eq!(ours, pb::Empty::decode(&bytes[..]).is_ok(), "{groups} groups");
        }
    }

    #[test]
    fn a_known_field_with_another_wire_type_is_an_unknown_field() {
        // functionId as a fixed32, then version "v": protobuf keeps the first as unknown.
        let bytes = [0x0d, 1, 0, 0, 0, 0x12, 0x01, b'v'];
        assert!(pb::FunctionRequestHeader::decode(&bytes[..]).is_err(), "prost refuses it");
        let header = pb::FunctionRequestHeader::decode(&normalize(&bytes, FUNCTION_REQUEST_HEADER).unwrap()[..]);
        assert_eq!(header.unwrap(), pb::FunctionRequestHeader { function_id: 0, version: "v".into() });
        // Inside a nested message too: a parameter's dataType as length-delimited.
        let parameter = [0x0a, 0x00, 0x12, 0x01, b'x'];
        let mut script = vec![0x22, parameter.len() as u8];
        script.extend_from_slice(&parameter);
        let header = pb::ScriptRequestHeader::decode(&normalize(&script, SCRIPT_REQUEST_HEADER).unwrap()[..]).unwrap();
        assert_eq!(header.params, [pb::Parameter { data_type: 0, name: "x".into() }]);
    }
}
