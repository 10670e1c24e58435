//! A text column as its distinct values and a code per row, built as its values come: the form
//! the input frame sends a dimension in (Python then makes one string per distinct value, not one
//! per row), kept by calls that keep their rows as each request message arrives.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::model::Strings;
use crate::wire::codec::{self, DecodeError, TextSink};

/// How many distinct values a column may show before more than half of the values seen being
/// distinct ends the trial (a column of 30 values in random order has most of them in its first
/// rows).
const DICTIONARY_TRIAL: usize = 1024;

/// A text column as its distinct values (in order of first appearance) and each row's code,
/// built as its values come (a call that keeps its rows decodes each message's straight into it,
/// as a [`TextSink`]; [`Dictionary::extend`] adds a column whole), so each value is looked up once
/// (not again for the frame) and a repeated one is not kept again. The trial
/// gives up as soon as more than `DICTIONARY_TRIAL` values are distinct and more than half of
/// those seen. A value equal to the row before's takes its code without a look-up (a constant
/// column, such as an options text Qlik sends on every row, or a key whose rows come together);
/// the look-ups hash with a per-process random seed.
#[derive(Debug)]
pub(in crate::wasm) struct Dictionary {
    /// Each distinct value once.
    distinct: Strings,
    /// A code per row: its value's place in `distinct`.
    codes: Vec<u32>,
    /// The codes, by their values' hash.
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// A distinct value holds a NUL (which the frame's joined form cannot hold).
    nul: bool,
    /// The bytes of the values added, in full, and 4 for each one's offset.
    value_bytes: usize,
    /// The trial gave up: no more values are added.
    gave_up: bool,
}

/// `a == b`, without a call to `memcmp` for values of up to 16 bytes (an options text, a code, a
/// dimension's value): the test every row makes, against the row before's and in the look-up.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    match n {
        // The first and the last 8 bytes, overlapping when under 16.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// A decoded message's text values go straight into the dictionary: a value equal to the row
/// before's takes its code after one comparison (no copy, no look-up, no UTF-8 check: its bytes
/// are those of a value checked before); another is looked up, and kept, once checked, when new.
impl TextSink for Dictionary {
    fn take(&mut self, value: &[u8]) -> Result<bool, DecodeError> {
        if self.gave_up {
            return Ok(false);
        }
        let code = match self.codes.last() {
            Some(&code) if same(self.distinct.get(code as usize), value) => code,
            _ => {
                let hash = self.hasher.hash_one(value);
                let (distinct, hasher) = (&self.distinct, &self.hasher);
                // One probe finds the value or the place it goes.
                let entry = self.index.entry(
                    hash,
                    |&code| same(distinct.get(code as usize), value),
                    |&code| hasher.hash_one(distinct.get(code as usize)),
                );
                match entry {
                    Entry::Occupied(found) => *found.get(),
                    Entry::Vacant(place) => {
                        let count = self.distinct.len();
                        if count > DICTIONARY_TRIAL && count * 2 > self.codes.len() {
                            self.gave_up = true;
                            return Ok(false);
                        }
                        codec::utf8(value)?;
                        // Distinct values past 4 GiB give up too (the plain column says why).
                        if self.distinct.push_bytes(value).is_err() {
                            self.gave_up = true;
                            return Ok(false);
                        }
                        self.nul |= value.contains(&0);
                        place.insert(count as u32);
                        count as u32
                    }
                }
            }
        };
        self.codes.push(code);
        self.value_bytes += value.len() + 4;
        Ok(true)
    }
}

impl Dictionary {
    /// None yet.
    pub(in crate::wasm) fn new() -> Self {
        Self {
            distinct: Strings::with_capacity(0),
            codes: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            nul: false,
            value_bytes: 0,
            gave_up: false,
        }
    }

    /// The dictionary of `values`, if they make a [`Dictionary::usable`] one.
    pub(super) fn of(values: &Strings) -> Option<Self> {
        let mut dictionary = Self::new();
        dictionary.codes.reserve(values.len());
        (dictionary.extend(values).is_ok() && dictionary.usable()).then_some(dictionary)
    }

    /// Adds `values`. Fails with the place of the first value not added when the trial gives up
    /// (the values before it are added).
    pub(in crate::wasm) fn extend(&mut self, values: &Strings) -> Result<(), usize> {
        for (i, value) in values.iter().enumerate() {
            if !self.take(value).map_err(|_| i)? {
                return Err(i);
            }
        }
        Ok(())
    }

    /// True once the trial has given up: the column's later values are not added.
    pub(in crate::wasm) fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// True when the frame may send the column as this dictionary: at least one value, at most
    /// half of them distinct, none holding a NUL.
    pub(in crate::wasm) fn usable(&self) -> bool {
        !self.codes.is_empty() && self.distinct.len() * 2 <= self.codes.len() && !self.nul
    }

    /// Each distinct value once, in order of first appearance.
    pub(super) fn distinct(&self) -> &Strings {
        &self.distinct
    }

    /// Each row's code: its value's place among the distinct values.
    pub(super) fn codes(&self) -> &[u32] {
        &self.codes
    }

    /// The column's values, each in full (as many bytes as [`Dictionary::value_bytes`] counts).
    pub(in crate::wasm) fn values(&self) -> Result<Strings, String> {
        let mut values = Strings::with_capacity(self.codes.len());
        values.data.reserve(self.value_bytes - 4 * self.codes.len());
        for &code in &self.codes {
            values.push_bytes(self.distinct.get(code as usize))?;
        }
        Ok(values)
    }

    /// The bytes the column's values take in full, 4 for each one's offset included (the rows a
    /// call keeps are limited by those, whatever form they are kept in), or what the dictionary
    /// holds where that is more (short values, many of them distinct: each distinct value's
    /// offset and index entry, each row's code).
    pub(in crate::wasm) fn value_bytes(&self) -> usize {
        let held = self.distinct.data.len() + 12 * self.distinct.len() + 4 * self.codes.len();
        self.value_bytes.max(held)
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::tests::strings;
    use super::*;
    use crate::model::Column;

    /// The distinct values and codes of `values`' dictionary, if they make a usable one.
    fn coded(values: &[&str]) -> Option<(Vec<String>, Vec<u32>)> {
        let dictionary = Dictionary::of(&strings(values))?;
        let distinct = dictionary.distinct.iter().map(|value| String::from_utf8(value.to_vec()).expect("UTF-8"));
        Some((distinct.collect(), dictionary.codes))
    }

    #[test]
    fn dimension_columns_go_as_distinct_values_and_codes() {
        let regions: Vec<&str> = (0..1000).map(|i| ["north", "south", "", "west"][i % 4]).collect();
        let (distinct, codes) = coded(&regions).expect("four distinct values in 1000");
        assert_eq!(distinct, ["north", "south", "", "west"]);
        assert_eq!(codes.len(), 1000);
        assert!(codes.iter().zip(&regions).all(|(&c, r)| distinct[c as usize] == *r));
        let unique: Vec<String> = (0..1000).map(|i| format!("id{i}")).collect();
        let unique: Vec<&str> = unique.iter().map(String::as_str).collect();
        assert!(coded(&unique).is_none(), "unique values go joined");
        assert!(coded(&["a", "b", "a"]).is_none(), "two of three distinct");
        assert!(coded(&["a", "a", "b", "a"]).is_some());
        assert!(coded(&["a\0b", "a\0b", "a\0b"]).is_none(), "a NUL cannot be joined");
        assert!(coded(&[]).is_none(), "no values");
        // Thirty items, every one of them among the first thirty rows.
        let items: Vec<String> = (0..1000).map(|i| format!("item {}", i % 30)).collect();
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        assert_eq!(coded(&items).expect("30 distinct values in 1000").0.len(), 30);
        // Runs of one value (a key whose rows come together, a constant): a value coming back
        // after another keeps its first code.
        let runs = coded(&["a", "a", "b", "b", "", "", "a", "a", "b", "b"]).expect("three in ten");
        assert_eq!(runs, (vec!["a".to_owned(), "b".into(), "".into()], vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1]));
        let constant = coded(&["x"; 500]).expect("one value");
        assert_eq!((constant.0.len(), constant.1.iter().all(|&c| c == 0)), (1, true));
    }

    #[test]
    fn a_dictionary_built_message_by_message_is_the_one_built_at_once() {
        let values: Vec<String> = (0..5000).map(|i| format!("T{}", (i / 4) % 500 + (i % 2) * 1000)).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let whole = Dictionary::of(&strings(&values)).expect("a dictionary");
        let mut parts = Dictionary::new();
        // Messages of odd sizes, one of a single row (whose value follows the last one's).
        for chunk in values[..1].chunks(1).chain(values[1..].chunks(333)) {
            parts.extend(&strings(chunk)).expect("part of the dictionary");
        }
        assert_eq!((&parts.distinct, &parts.codes), (&whole.distinct, &whole.codes));
        assert_eq!(parts.values().expect("values"), strings(&values));
        assert_eq!(parts.value_bytes(), Column::Text(strings(&values)).value_bytes() - 4);
        // Three-byte values, half of them distinct: the dictionary holds more than the values
        // (2,000 × 7 bytes).
        let short: Vec<String> = (0..2000).map(|i| format!("{:03}", i % 1000)).collect();
        let short: Vec<&str> = short.iter().map(String::as_str).collect();
        let dictionary = Dictionary::of(&strings(&short)).expect("1,000 distinct values");
        assert_eq!(dictionary.value_bytes(), 1000 * 3 + 12 * 1000 + 4 * 2000);
    }

    #[test]
    fn values_compare_as_slices_do_at_every_length() {
        let values: Vec<Vec<u8>> = (0..40).map(|n| (0..n).map(|i| b'a' + (i % 7) as u8).collect()).collect();
        for a in &values {
            for b in &values {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
                // One byte changed, at each place.
                for at in 0..b.len() {
                    let mut c = b.clone();
                    c[at] ^= 0x20;
                    assert_eq!(same(a, &c), *a == c, "{a:?} {c:?}");
                }
            }
        }
    }

    #[test]
    fn the_trial_gives_up_where_too_many_values_are_distinct() {
        let mut dictionary = Dictionary::new();
        let repeated: Vec<&str> = vec!["same"; 100];
        dictionary.extend(&strings(&repeated)).expect("one value");
        let unique: Vec<String> = (0..3000).map(|i| format!("u{i}")).collect();
        let unique: Vec<&str> = unique.iter().map(String::as_str).collect();
        // Its value 1024 would be new with 1025 distinct among the 1124 seen: past the trial's
        // 1024, and past half.
        assert_eq!(dictionary.extend(&strings(&unique)), Err(1024));
        assert_eq!(dictionary.codes.len(), 100 + 1024, "the values before it are added");
    }
}
