//! The frames that cross the data-science engine's door: the forms they share, and the answer
//! and table frames the driver writes, read back with every length checked (the input frame the
//! host writes is `input`'s).

use crate::model::{Batch, Column, DataType, ScriptField, ScriptTable, Strings};

/// The forms of a text column in a frame: offsets then bytes, or the values joined by NUL (when
/// none holds one).
pub(super) const OFFSETS: u32 = 0;
pub(super) const JOINED: u32 = 1;
/// Only from the host: distinct values and a code per row.
pub(super) const DICTIONARY: u32 = 2;

/// The first bytes of an answer frame.
const ANSWER_MAGIC: &[u8; 4] = b"ANSW";

pub(super) fn type_number(t: DataType) -> u32 {
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
