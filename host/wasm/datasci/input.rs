//! The input frame: what the data-science engine's driver takes through the door, written from
//! a call's columns straight into the driver's memory.

use crate::error::CallError;
use crate::model::script::LABEL;
use crate::model::{Column, FunctionType, Script, Strings};

use super::dictionary::Dictionary;
use super::frame::{DICTIONARY, JOINED, OFFSETS, type_number};

/// What the driver takes through the door (`input-size`, then `input-into`): bytes as
/// they are (a function file's code), or a call's rows, which the door writes as the input frame
/// straight into the driver's memory, so that the host never holds a second copy of them.
pub(crate) enum Input {
    /// Shared with the loaded file that holds them: no copy per call.
    Bytes(std::sync::Arc<[u8]>),
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
            return Err(CallError::bad_input(LABEL, "the input passes 2 GiB"));
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
        write_joined(out, values);
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
    write_joined(out, distinct);
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

/// At least one value, none holding a NUL: their joined length, then them joined by NUL, written
/// in place (counting them takes no pass over the values).
fn write_joined(out: &mut impl Sink, values: &Strings) {
    let joined = values.data.len() + values.len() - 1;
    out.put(&(joined as u32).to_le_bytes());
    if let Some(room) = out.room(joined) {
        let mut at = 0;
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                room[at] = 0;
                at += 1;
            }
            room[at..at + value.len()].copy_from_slice(value);
            at += value.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DataType;
    use crate::wasm::datasci::frame::tests::strings;

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
}
