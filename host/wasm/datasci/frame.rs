//! The frames that cross the data-science engine's door: the input frame the host writes
//! (the script, its parameters and every column, texts as offsets, NUL-joined or as a dictionary)
//! and the answer and table frames the driver writes, read back with every length checked.

use crate::error::CallError;
use crate::model::script::LABEL;
use crate::model::{Batch, Column, DataType, FunctionType, Script, ScriptField, ScriptTable, Strings};

use super::dictionary::Dictionary;

/// The forms of a text column in a frame: offsets then bytes, or the values joined by NUL (when
/// none holds one).
const OFFSETS: u32 = 0;
const JOINED: u32 = 1;
/// Only from the host: distinct values and a code per row.
const DICTIONARY: u32 = 2;

/// The first bytes of an answer frame.
const ANSWER_MAGIC: &[u8; 4] = b"ANSW";

fn type_number(t: DataType) -> u32 {
    match t {
        DataType::Text => 0,
        DataType::Numeric => 1,
        DataType::Dual => 2,
    }
}

pub(in crate::wasm) fn data_type(number: u32) -> Option<DataType> {
    match number {
        0 => Some(DataType::Text),
        1 => Some(DataType::Numeric),
        2 => Some(DataType::Dual),
        _ => None,
    }
}

/// The input frame the driver reads: version, function type, return type, rows, parameter
/// count; each parameter's type and name; the script; then each column (numbers 8-aligned as
/// f64; texts 4-aligned, their form, then either their NUL-joined bytes' length and the bytes, or
/// u32 offsets and the bytes), all little-endian. The texts of column `i` are `coded[i]` where
/// that is given (the rows a call kept as a dictionary), else the column's own.
pub(in crate::wasm) fn input_frame(
    script: &Script,
    rows: usize,
    columns: &[Column],
    coded: &[Option<Dictionary>],
) -> Result<Vec<u8>, CallError> {
    let too_big = || CallError::BadInput { function: LABEL.to_owned(), reason: "the input passes 4 GiB".to_owned() };
    let size: usize = 64
        + script.text.len()
        + script.params.iter().map(|(n, _)| n.len() + 8).sum::<usize>()
        // Each column's values, and room to align its numbers and its texts.
        + columns.iter().map(|c| c.value_bytes() + if matches!(c, Column::Dual(..)) { 16 } else { 8 }).sum::<usize>()
        + coded.iter().flatten().map(|d| d.distinct().data.len() + d.distinct().len() + 4 * d.codes().len() + 16).sum::<usize>();
    if size > i32::MAX as usize {
        return Err(too_big());
    }
    let mut out = Vec::with_capacity(size);
    let function_type = match script.function_type {
        FunctionType::Scalar => 0u32,
        FunctionType::Aggregation => 1,
        FunctionType::Tensor => 2,
    };
    for value in [1, function_type, type_number(script.return_type), rows as u32, script.params.len() as u32] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    for (name, t) in &script.params {
        out.extend_from_slice(&type_number(*t).to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(&(script.text.len() as u32).to_le_bytes());
    out.extend_from_slice(script.text.as_bytes());
    let numbers = |out: &mut Vec<u8>, values: &[f64]| {
        out.resize(out.len().next_multiple_of(8), 0);
        extend_le(out, values, |v| v.to_le_bytes());
    };
    for (i, column) in columns.iter().enumerate() {
        let texts = |out: &mut Vec<u8>, s: &Strings| match coded.get(i) {
            Some(Some(dictionary)) => write_dictionary(out, dictionary),
            _ => write_texts(out, s),
        };
        match column {
            Column::Numeric(v) => numbers(&mut out, v),
            Column::Text(s) => texts(&mut out, s),
            Column::Dual(v, s) => {
                numbers(&mut out, v);
                texts(&mut out, s);
            }
        }
    }
    Ok(out)
}

/// A text column for the driver, 4-aligned: its distinct values and a code per row when it has
/// few (a dimension: Python then makes one string per distinct value, not one per row); else its
/// values joined by NUL when none holds one; else offsets and bytes.
fn write_texts(out: &mut Vec<u8>, values: &Strings) {
    if let Some(dictionary) = Dictionary::of(values) {
        return write_dictionary(out, &dictionary);
    }
    out.resize(out.len().next_multiple_of(4), 0);
    if !values.is_empty() && !values.data.contains(&0) {
        // Joined by NUL, which Python splits in one call instead of slicing value by value.
        out.extend_from_slice(&JOINED.to_le_bytes());
        write_joined(out, values.iter());
        return;
    }
    out.extend_from_slice(&OFFSETS.to_le_bytes());
    for o in &values.offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&values.data);
}

/// A text column as its distinct values and a code per row, 4-aligned; only a
/// [`Dictionary::usable`] one (at least a value, none holding a NUL).
fn write_dictionary(out: &mut Vec<u8>, dictionary: &Dictionary) {
    let distinct = dictionary.distinct();
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(&DICTIONARY.to_le_bytes());
    out.extend_from_slice(&(distinct.len() as u32).to_le_bytes());
    write_joined(out, distinct.iter());
    out.resize(out.len().next_multiple_of(4), 0);
    extend_le(out, dictionary.codes(), |c| c.to_le_bytes());
}

/// Appends `values` to `out`, each as its `N` little-endian bytes: sized once and written in
/// place, which compiles to a block copy, where a push per value checks the capacity each time.
fn extend_le<T: Copy, const N: usize>(out: &mut Vec<u8>, values: &[T], bytes: impl Fn(T) -> [u8; N]) {
    let start = out.len();
    out.resize(start + N * values.len(), 0);
    for (place, &value) in out[start..].chunks_exact_mut(N).zip(values) {
        place.copy_from_slice(&bytes(value));
    }
}

/// At least one value, none holding a NUL: their joined length, then them joined by NUL.
fn write_joined<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = &'a [u8]> + Clone) {
    let (count, bytes) = values.clone().fold((0, 0), |(count, bytes), v| (count + 1, bytes + v.len()));
    out.extend_from_slice(&((bytes + count - 1) as u32).to_le_bytes());
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(value);
    }
}

/// Reads a frame a guest wrote, checking every length against what is there.
pub(in crate::wasm) struct Reader<'a> {
    pub(in crate::wasm) bytes: &'a [u8],
    pub(in crate::wasm) at: usize,
}

impl<'a> Reader<'a> {
    pub(in crate::wasm) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("the frame is cut short")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
    pub(in crate::wasm) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn align(&mut self, to: usize) -> Result<(), String> {
        let padding = self.at.next_multiple_of(to) - self.at;
        self.take(padding).map(|_| ())
    }
    pub(in crate::wasm) fn text(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a text is not UTF-8".to_owned())
    }
    fn numbers(&mut self, rows: usize) -> Result<Vec<f64>, String> {
        self.align(8)?;
        let bytes = self.take(rows.checked_mul(8).ok_or("too many rows")?)?;
        Ok(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }
    fn strings(&mut self, rows: usize) -> Result<Strings, String> {
        self.align(4)?;
        match self.u32()? {
            OFFSETS => {}
            JOINED => {
                let length = self.u32()? as usize;
                let joined = self.take(length)?;
                let mut strings = Strings::with_capacity(rows);
                if rows > 0 {
                    for value in joined.split(|&b| b == 0) {
                        strings.push_bytes(value)?;
                    }
                }
                if strings.len() != rows || (rows == 0 && length != 0) {
                    return Err(format!("a joined text column holds {} values for {rows} rows", strings.len()));
                }
                strings.check(rows)?;
                return Ok(strings);
            }
            form => return Err(format!("a text column of unknown form {form}")),
        }
        let bytes = self.take(rows.checked_add(1).and_then(|n| n.checked_mul(4)).ok_or("too many rows")?)?;
        let offsets: Vec<u32> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4"))).collect();
        let data = self.take(*offsets.last().unwrap_or(&0) as usize)?.to_vec();
        let strings = Strings { data, offsets };
        strings.check(rows)?;
        Ok(strings)
    }
}

/// The answer frame: `ANSW`, columns, rows, each column's type, then the columns.
pub(in crate::wasm) fn read_answer(frame: &[u8]) -> Result<Batch, String> {
    let mut r = Reader { bytes: frame, at: 0 };
    if r.take(4)? != ANSWER_MAGIC {
        return Err("the answer frame does not start with ANSW".to_owned());
    }
    let (count, rows) = (r.u32()? as usize, r.u32()? as usize);
    // Every value takes at least one byte, so a row count past the frame's size is a lie.
    if rows > frame.len() || count > frame.len() {
        return Err(format!("the answer claims {rows} rows in {count} columns in {} bytes", frame.len()));
    }
    let types = (0..count)
        .map(|_| r.u32().and_then(|t| data_type(t).ok_or_else(|| format!("a column of unknown type {t}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut columns = Vec::with_capacity(count);
    for t in types {
        columns.push(match t {
            DataType::Numeric => Column::Numeric(r.numbers(rows)?),
            DataType::Text => Column::Text(r.strings(rows)?),
            DataType::Dual => {
                let numbers = r.numbers(rows)?;
                Column::Dual(numbers, r.strings(rows)?)
            }
        });
    }
    if r.at != frame.len() {
        return Err("the answer frame has bytes after its columns".to_owned());
    }
    Ok(Batch { rows, columns })
}

/// The TableDescription frame: name, rows, fields (type, name, tags).
pub(in crate::wasm) fn read_table(frame: &[u8]) -> Result<ScriptTable, String> {
    let mut r = Reader { bytes: frame, at: 0 };
    let name = r.text()?;
    let number_of_rows = r.i64()?;
    let count = r.u32()? as usize;
    if count > frame.len() {
        return Err("the TableDescription claims more fields than it holds".to_owned());
    }
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let t = r.u32()?;
        let data_type = data_type(t).ok_or_else(|| format!("a field of the TableDescription has the data type {t}"))?;
        let name = r.text()?;
        let tags = r.u32()? as usize;
        if tags > frame.len() {
            return Err("a field claims more tags than the TableDescription holds".to_owned());
        }
        let tags = (0..tags).map(|_| r.text()).collect::<Result<Vec<_>, _>>()?;
        fields.push(ScriptField { name, data_type, tags });
    }
    if r.at != frame.len() {
        return Err("the TableDescription frame has bytes after its fields".to_owned());
    }
    Ok(ScriptTable { name, fields, number_of_rows })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A text column of `values`.
    pub(in crate::wasm) fn strings(values: &[&str]) -> Strings {
        let mut s = Strings::with_capacity(values.len());
        for v in values {
            s.push(v).expect("push");
        }
        s
    }

    #[test]
    fn an_answer_frame_reads_back_and_lies_are_refused() {
        let mut frame = b"ANSW".to_vec();
        for v in [3u32, 2, 1, 0, 2] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        frame.resize(frame.len().next_multiple_of(8), 0);
        for v in [1.5f64, -2.0] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        for o in [OFFSETS, 0, 1, 3] {
            frame.extend_from_slice(&o.to_le_bytes());
        }
        frame.extend_from_slice("aé".as_bytes());
        frame.resize(frame.len().next_multiple_of(8), 0);
        for v in [7.0f64, 8.0] {
            frame.extend_from_slice(&v.to_le_bytes());
        }
        for o in [JOINED, 3] {
            frame.extend_from_slice(&o.to_le_bytes());
        }
        frame.extend_from_slice(b"x\0y");
        let batch = read_answer(&frame).expect("reads");
        assert_eq!(batch.rows, 2);
        assert_eq!(batch.columns[0], Column::Numeric(vec![1.5, -2.0]));
        assert_eq!(batch.columns[1], Column::Text(strings(&["a", "é"])));
        assert_eq!(batch.columns[2], Column::Dual(vec![7.0, 8.0], strings(&["x", "y"])));
        // Every shorter frame is refused, never read past.
        for cut in 0..frame.len() {
            assert!(read_answer(&frame[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert!(read_answer(&longer).is_err());
        let mut lying = frame.clone();
        lying[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_answer(&lying).is_err());
    }

    #[test]
    fn a_joined_text_column_must_hold_exactly_its_rows() {
        let frame = |rows: u32, joined: &[u8]| {
            let mut frame = b"ANSW".to_vec();
            for v in [1u32, rows, 0, JOINED, joined.len() as u32] {
                frame.extend_from_slice(&v.to_le_bytes());
            }
            frame.extend_from_slice(joined);
            frame
        };
        let batch = read_answer(&frame(3, b"a\0\0c")).expect("three values, one empty");
        assert_eq!(batch.columns[0], Column::Text(strings(&["a", "", "c"])));
        assert!(read_answer(&frame(2, b"a\0b\0c")).is_err(), "three values for two rows");
        assert!(read_answer(&frame(4, b"a\0b\0c")).is_err(), "three values for four rows");
        assert!(read_answer(&frame(0, b"a")).is_err(), "a value for no rows");
        assert!(read_answer(&frame(1, b"\xff")).is_err(), "not UTF-8");
        assert_eq!(read_answer(&frame(0, b"")).expect("no rows").rows, 0);
    }

    #[test]
    fn a_table_frame_reads_back() {
        let mut frame = Vec::new();
        let text = |f: &mut Vec<u8>, s: &str| {
            f.extend_from_slice(&(s.len() as u32).to_le_bytes());
            f.extend_from_slice(s.as_bytes());
        };
        text(&mut frame, "T");
        frame.extend_from_slice(&5i64.to_le_bytes());
        frame.extend_from_slice(&1u32.to_le_bytes());
        frame.extend_from_slice(&1u32.to_le_bytes());
        text(&mut frame, "A");
        frame.extend_from_slice(&1u32.to_le_bytes());
        text(&mut frame, "$key");
        let table = read_table(&frame).expect("reads");
        assert_eq!(table.name, "T");
        assert_eq!(table.number_of_rows, 5);
        assert_eq!(
            table.fields,
            vec![ScriptField { name: "A".into(), data_type: DataType::Numeric, tags: vec!["$key".into()] }]
        );
        for cut in 0..frame.len() {
            assert!(read_table(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }
}
