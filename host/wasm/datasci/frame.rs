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

/// What the driver takes through the door's `input` request: bytes as they are (a function
/// file's code), or a call's rows, which the door writes as the input frame straight into the
/// memory the driver allocates for them, so that the host never holds a second copy of them.
pub(crate) enum Input {
    Bytes(Vec<u8>),
    Rows(InputFrame),
}

impl Input {
    /// The bytes the driver receives.
    pub(crate) fn len(&self) -> usize {
        match self {
            Input::Bytes(bytes) => bytes.len(),
            Input::Rows(frame) => frame.len(),
        }
    }

    /// Writes them into `out`, of [`Input::len`] bytes.
    pub(crate) fn write(&self, out: &mut [u8]) {
        match self {
            Input::Bytes(bytes) => out.copy_from_slice(bytes),
            Input::Rows(frame) => {
                let mut fill = Fill { out, at: 0 };
                frame.write(&mut fill);
                debug_assert_eq!(fill.at, frame.len, "the frame's length as counted");
            }
        }
    }
}

/// The input frame the driver reads: version, function type, return type, rows, parameter
/// count; each parameter's type and name; the script; then each column (numbers 8-aligned as
/// f64; texts 4-aligned, their form, then either their NUL-joined bytes' length and the bytes, or
/// u32 offsets and the bytes), all little-endian. A text column goes as distinct values and a code
/// per row when it has few: as the dictionary a call kept, or one made here.
pub(crate) struct InputFrame {
    script: Script,
    rows: usize,
    columns: Vec<Column>,
    /// Each text column's dictionary, where it goes as one.
    coded: Vec<Option<Dictionary>>,
    /// The frame's length in bytes.
    len: usize,
}

impl InputFrame {
    /// The frame of `rows` rows of `columns` for `script`; `coded[i]`, where given, holds the
    /// texts of column `i` (the rows a call kept as a dictionary). Refused past 2 GiB.
    pub(in crate::wasm) fn new(
        script: &Script,
        rows: usize,
        columns: Vec<Column>,
        mut coded: Vec<Option<Dictionary>>,
    ) -> Result<Self, CallError> {
        coded.resize_with(columns.len(), || None);
        for (column, coded) in columns.iter().zip(&mut coded) {
            if let (None, Some(strings)) = (coded.as_ref(), column.strings()) {
                *coded = Dictionary::of(strings);
            }
        }
        let mut frame = Self { script: script.clone(), rows, columns, coded, len: 0 };
        let mut count = Count(0);
        frame.write(&mut count);
        if count.0 > i32::MAX as usize {
            return Err(CallError::BadInput {
                function: LABEL.to_owned(),
                reason: "the input passes 2 GiB".to_owned(),
            });
        }
        frame.len = count.0;
        Ok(frame)
    }

    /// The frame's length in bytes.
    pub(in crate::wasm) fn len(&self) -> usize {
        self.len
    }

    fn write(&self, out: &mut impl Sink) {
        let script = &self.script;
        let function_type = match script.function_type {
            FunctionType::Scalar => 0u32,
            FunctionType::Aggregation => 1,
            FunctionType::Tensor => 2,
        };
        for value in [1, function_type, type_number(script.return_type), self.rows as u32, script.params.len() as u32] {
            out.put(&value.to_le_bytes());
        }
        for (name, t) in &script.params {
            out.put(&type_number(*t).to_le_bytes());
            out.put(&(name.len() as u32).to_le_bytes());
            out.put(name.as_bytes());
        }
        out.put(&(script.text.len() as u32).to_le_bytes());
        out.put(script.text.as_bytes());
        let numbers = |out: &mut _, values: &[f64]| {
            pad(out, 8);
            put_le(out, values, f64::to_le_bytes);
        };
        for (column, coded) in self.columns.iter().zip(&self.coded) {
            let texts = |out: &mut _, s: &Strings| match coded {
                Some(dictionary) => write_dictionary(out, dictionary),
                None => write_texts(out, s),
            };
            match column {
                Column::Numeric(v) => numbers(out, v),
                Column::Text(s) => texts(out, s),
                Column::Dual(v, s) => {
                    numbers(out, v);
                    texts(out, s);
                }
            }
        }
    }
}

/// Where a frame is written: counted, or filled in.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn zeros(&mut self, n: usize);
    fn at(&self) -> usize;
    /// Room for `n` bytes, to write in place.
    fn room(&mut self, n: usize) -> Option<&mut [u8]>;
}

/// Counts the bytes of a frame.
struct Count(usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    fn zeros(&mut self, n: usize) {
        self.0 += n;
    }
    fn at(&self) -> usize {
        self.0
    }
    fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0 += n;
        None
    }
}

/// Fills memory of exactly a frame's length with it.
struct Fill<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Sink for Fill<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
    fn zeros(&mut self, n: usize) {
        self.out[self.at..self.at + n].fill(0);
        self.at += n;
    }
    fn at(&self) -> usize {
        self.at
    }
    fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        let room = &mut self.out[self.at..self.at + n];
        self.at += n;
        Some(room)
    }
}

/// Zeros up to the next multiple of `align`.
fn pad(out: &mut impl Sink, align: usize) {
    let at = out.at();
    out.zeros(at.next_multiple_of(align) - at);
}

/// A text column for the driver, 4-aligned, when it goes as no dictionary: its values joined by
/// NUL when none holds one; else offsets and bytes.
fn write_texts(out: &mut impl Sink, values: &Strings) {
    pad(out, 4);
    if !values.is_empty() && !values.data.contains(&0) {
        // Joined by NUL, which Python splits in one call instead of slicing value by value.
        out.put(&JOINED.to_le_bytes());
        write_joined(out, values.iter());
        return;
    }
    out.put(&OFFSETS.to_le_bytes());
    put_le(out, &values.offsets, u32::to_le_bytes);
    out.put(&values.data);
}

/// A text column as its distinct values and a code per row, 4-aligned; only a
/// [`Dictionary::usable`] one (at least a value, none holding a NUL).
fn write_dictionary(out: &mut impl Sink, dictionary: &Dictionary) {
    let distinct = dictionary.distinct();
    pad(out, 4);
    out.put(&DICTIONARY.to_le_bytes());
    out.put(&(distinct.len() as u32).to_le_bytes());
    write_joined(out, distinct.iter());
    pad(out, 4);
    put_le(out, dictionary.codes(), u32::to_le_bytes);
}

/// Writes `values`, each as its `N` little-endian bytes, in place: a block copy, where a write
/// per value would check the room each time.
fn put_le<T: Copy, const N: usize>(out: &mut impl Sink, values: &[T], bytes: impl Fn(T) -> [u8; N]) {
    if let Some(room) = out.room(N * values.len()) {
        for (place, &value) in room.chunks_exact_mut(N).zip(values) {
            place.copy_from_slice(&bytes(value));
        }
    }
}

/// At least one value, none holding a NUL: their joined length, then them joined by NUL.
fn write_joined<'a>(out: &mut impl Sink, values: impl Iterator<Item = &'a [u8]> + Clone) {
    let (count, bytes) = values.clone().fold((0, 0), |(count, bytes), v| (count + 1, bytes + v.len()));
    out.put(&((bytes + count - 1) as u32).to_le_bytes());
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.put(&[0]);
        }
        out.put(value);
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
    fn an_input_frame_fills_exactly_the_bytes_it_counts_in_the_drivers_layout() {
        let params = [("x", DataType::Numeric), ("d", DataType::Text), ("j", DataType::Text), ("o", DataType::Text)];
        let script = Script {
            text: "f".to_owned(),
            params: params.iter().map(|&(name, t)| (name.to_owned(), t)).collect(),
            function_type: FunctionType::Aggregation,
            return_type: DataType::Numeric,
        };
        let columns = vec![
            Column::Numeric(vec![1.5, -2.0, 0.25]),
            // A constant: distinct values and codes. Three distinct: joined. One holding a NUL:
            // offsets and bytes.
            Column::Text(strings(&["o", "o", "o"])),
            Column::Text(strings(&["a", "bc", "d"])),
            Column::Text(strings(&["a\0", "", "é"])),
        ];
        let frame = InputFrame::new(&script, 3, columns, Vec::new()).expect("framed");
        let mut expected = Vec::new();
        let u32s =
            |out: &mut Vec<u8>, values: &[u32]| values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        u32s(&mut expected, &[1, 1, 1, 3, 4]);
        for (t, name) in [(1, "x"), (0, "d"), (0, "j"), (0, "o")] {
            u32s(&mut expected, &[t, 1]);
            expected.extend_from_slice(name.as_bytes());
        }
        u32s(&mut expected, &[1]);
        expected.push(b'f');
        expected.resize(expected.len().next_multiple_of(8), 0);
        [1.5f64, -2.0, 0.25].iter().for_each(|v| expected.extend_from_slice(&v.to_le_bytes()));
        u32s(&mut expected, &[DICTIONARY, 1, 1]);
        expected.push(b'o');
        expected.resize(expected.len().next_multiple_of(4), 0);
        u32s(&mut expected, &[0, 0, 0, JOINED, 6]);
        expected.extend_from_slice(b"a\0bc\0d");
        expected.resize(expected.len().next_multiple_of(4), 0);
        u32s(&mut expected, &[OFFSETS, 0, 2, 2, 4]);
        expected.extend_from_slice("a\0é".as_bytes());
        assert_eq!(frame.len(), expected.len());
        let mut out = vec![0xAA; expected.len()];
        Input::Rows(frame).write(&mut out);
        assert_eq!(out, expected);
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
