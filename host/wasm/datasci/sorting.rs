//! Sorting numbers for the data-science engine, natively: the stable order and the average ranks
//! of a column, computed by the host over buffers in the instance's own memory (the engine's numpy
//! has no vector instructions: it sorts 100,000 numbers several times slower than natively).
//!
//! The driver asks through the door (`sort-order` or `sort-ranks`, then four u32: the count, and
//! the addresses of the numbers, of the answer and of a scratch buffer of 24 bytes per number).
//! The host allocates nothing per number: the keys and indices it sorts live in the scratch
//! buffer, so what a request can make the host hold is bounded by the instance's memory limit.

use std::ops::Range;

/// What a request answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Want {
    /// Each position of the sorted column: u32, as `numpy.argsort(kind="stable")` gives them.
    Order,
    /// Each number's average rank (f64, 1 for the smallest; NaN for NaN), as pandas'
    /// `Series.rank()` gives them.
    Ranks,
}

/// One request: `count` numbers (f64) at `values`, the answer at `out` (4 or 8 bytes per number)
/// and 24 bytes per number of scratch at `scratch` (keys and positions, twice), all in the
/// instance's memory, none overlapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SortRequest {
    want: Want,
    count: usize,
    values: usize,
    out: usize,
    scratch: usize,
}

/// Bits of a key each pass sorts on: six passes for 64 bits, 2,048 counters each.
const DIGIT: u32 = 11;
const PASSES: usize = 64_usize.div_ceil(DIGIT as usize);
const BUCKETS: usize = 1 << DIGIT;

impl SortRequest {
    /// The request after the door's `sort-`: `order` or `ranks`, then the count and three
    /// addresses (u32, little-endian).
    pub(super) fn parse(request: &[u8]) -> Result<Self, &'static str> {
        let (want, numbers) = if let Some(rest) = request.strip_prefix(b"order") {
            (Want::Order, rest)
        } else if let Some(rest) = request.strip_prefix(b"ranks") {
            (Want::Ranks, rest)
        } else {
            return Err("an unknown sort request");
        };
        let numbers: [u8; 16] = numbers.try_into().map_err(|_| "a malformed sort request")?;
        let at = |i: usize| u32::from_le_bytes(numbers[4 * i..4 * i + 4].try_into().expect("4 bytes")) as usize;
        Ok(Self { want, count: at(0), values: at(1), out: at(2), scratch: at(3) })
    }

    /// Sorts in `memory`, the instance's whole memory: refused when a buffer lies outside it or
    /// two of them overlap.
    pub(super) fn run(&self, memory: &mut [u8]) -> Result<(), &'static str> {
        let n = self.count;
        let width = if self.want == Want::Order { 4 } else { 8 };
        let region = |at: usize, bytes: usize| {
            let end = n.checked_mul(bytes).and_then(|len| at.checked_add(len)).filter(|&end| end <= memory.len());
            end.map(|end| at..end).ok_or("a sort buffer outside its memory")
        };
        let (values, out, scratch) = (region(self.values, 8)?, region(self.out, width)?, region(self.scratch, 24)?);
        if overlap(&values, &out) || overlap(&values, &scratch) || overlap(&out, &scratch) {
            return Err("sort buffers that overlap");
        }
        let (values, scratch_bytes) = split(memory, values, scratch.clone());
        let (first, second) = scratch_bytes.split_at_mut(12 * n);
        sort(values, first.as_chunks_mut().0, second.as_chunks_mut().0);
        let (sorted, out) = split(memory, scratch.start..scratch.start + 12 * n, out);
        let sorted = sorted.as_chunks::<RECORD>().0;
        match self.want {
            Want::Order => {
                for (record, out) in sorted.iter().zip(out.as_chunks_mut::<4>().0) {
                    *out = index(record).to_le_bytes();
                }
            }
            Want::Ranks => write_ranks(sorted, out.as_chunks_mut().0),
        }
        Ok(())
    }
}

fn overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end && !a.is_empty() && !b.is_empty()
}

/// `memory[read]` to read and `memory[write]` to write, two ranges that do not overlap.
fn split(memory: &mut [u8], read: Range<usize>, write: Range<usize>) -> (&[u8], &mut [u8]) {
    if read.start < write.start {
        let (low, high) = memory.split_at_mut(write.start);
        (&low[read], &mut high[..write.len()])
    } else {
        let (low, high) = memory.split_at_mut(read.start);
        (&high[..read.len()], &mut low[write])
    }
}

/// The key a number sorts by as an unsigned integer: a negative number's bits inverted, a
/// positive one's sign bit set; -0.0 as 0.0 (they are equal) and every NaN last, all alike.
fn key(bits: u64) -> u64 {
    const SIGN: u64 = 1 << 63;
    let magnitude = bits & !SIGN;
    if magnitude > 0x7ff0_0000_0000_0000 {
        u64::MAX
    } else if magnitude == 0 {
        SIGN
    } else if bits & SIGN != 0 {
        !bits
    } else {
        bits | SIGN
    }
}

/// A number's key (u64) then its position (u32), little-endian: what the passes move.
const RECORD: usize = 12;

fn key_of(record: &[u8; RECORD]) -> u64 {
    u64::from_le_bytes(record[..8].try_into().expect("8 bytes"))
}

fn index(record: &[u8; RECORD]) -> u32 {
    u32::from_le_bytes(record[8..].try_into().expect("4 bytes"))
}

/// A stable least-significant-digit radix sort of `values`' keys with their positions, passing
/// over digits every key shares: the sorted records end in `records` (the scratch's first 12
/// bytes per number); `spare` is the other half. Keys and positions move together as one
/// record, one write per number a pass (twice as fast as two arrays: half the streams written).
fn sort(values: &[u8], records: &mut [[u8; RECORD]], spare: &mut [[u8; RECORD]]) {
    let n = records.len();
    let mut counts = vec![[0_u32; BUCKETS]; PASSES];
    for (i, (value, record)) in values.as_chunks::<8>().0.iter().zip(records.iter_mut()).enumerate() {
        let k = key(u64::from_le_bytes(*value));
        record[..8].copy_from_slice(&k.to_le_bytes());
        record[8..].copy_from_slice(&(i as u32).to_le_bytes());
        for (pass, counts) in counts.iter_mut().enumerate() {
            counts[digit(k, pass)] += 1;
        }
    }
    let (mut from, mut to) = (records, spare);
    let mut swapped = false;
    for (pass, counts) in counts.iter().enumerate() {
        // A digit every key shares leaves the order as it is.
        if counts.iter().any(|&c| c as usize == n) {
            continue;
        }
        let mut next = [0_u32; BUCKETS];
        let mut total = 0;
        for (next, &count) in next.iter_mut().zip(counts) {
            *next = total;
            total += count;
        }
        for record in from.iter() {
            let slot = &mut next[digit(key_of(record), pass)];
            to[*slot as usize] = *record;
            *slot += 1;
        }
        std::mem::swap(&mut from, &mut to);
        swapped = !swapped;
    }
    if swapped {
        // The sorted records are in the spare half: back to the first.
        to.copy_from_slice(from);
    }
}

fn digit(key: u64, pass: usize) -> usize {
    ((key >> (DIGIT as usize * pass)) as usize) & (BUCKETS - 1)
}

/// Each number's average rank from the sorted records: tied keys share the mean of their ranks;
/// NaN (the largest key) ranks NaN.
fn write_ranks(sorted: &[[u8; RECORD]], out: &mut [[u8; 8]]) {
    let n = sorted.len();
    let mut start = 0;
    while start < n {
        let k = key_of(&sorted[start]);
        let mut end = start + 1;
        while end < n && key_of(&sorted[end]) == k {
            end += 1;
        }
        let rank = if k == u64::MAX { f64::NAN } else { (start + end + 1) as f64 / 2.0 };
        for record in &sorted[start..end] {
            out[index(record) as usize] = rank.to_le_bytes();
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so that failures repeat.
    struct Numbers(u64);

    impl Numbers {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Numbers with many ties, both zeros, NaNs of several payloads and signs, infinities,
        /// subnormals and wide magnitudes.
        fn value(&mut self) -> f64 {
            match self.next() % 12 {
                0 => f64::from_bits(0x7ff8_0000_0000_0000 | (self.next() & 0xffff) | (self.next() & (1 << 63))),
                1 => -0.0,
                2 => 0.0,
                3 => [f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE / 4.0, -5e-324][(self.next() % 4) as usize],
                4..=6 => (self.next() % 7) as f64 - 3.0,
                _ => f64::from_bits(self.next() >> 2) * if self.next().is_multiple_of(2) { 1.0 } else { -1.0 },
            }
        }
    }

    /// The request's buffers laid out in a memory of their own: numbers at 8, the answer after
    /// them, the scratch after that, then a guard of bytes that must stay untouched.
    fn run(want: Want, values: &[f64]) -> Vec<u8> {
        let n = values.len();
        let width = if want == Want::Order { 4 } else { 8 };
        let (at_values, at_out) = (8, 8 + 8 * n);
        let at_scratch = at_out + width * n + 3;
        let mut memory = vec![0xa5_u8; at_scratch + 24 * n + 16];
        for (i, v) in values.iter().enumerate() {
            memory[at_values + 8 * i..at_values + 8 * i + 8].copy_from_slice(&v.to_le_bytes());
        }
        let request = SortRequest { want, count: n, values: at_values, out: at_out, scratch: at_scratch };
        request.run(&mut memory).unwrap();
        assert!(
            memory[..8].iter().chain(&memory[at_scratch + 24 * n..]).all(|&b| b == 0xa5),
            "wrote outside its buffers"
        );
        memory[at_out..at_out + width * n].to_vec()
    }

    /// The stable order by the numbers' values, NaN after everything, -0.0 equal to 0.0.
    fn reference_order(values: &[f64]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (values[a as usize], values[b as usize]);
            match (a.is_nan(), b.is_nan()) {
                (false, false) => a.partial_cmp(&b).unwrap(),
                (a, b) => a.cmp(&b),
            }
        });
        order
    }

    fn reference_ranks(values: &[f64]) -> Vec<f64> {
        values
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    return f64::NAN;
                }
                let below = values.iter().filter(|&&w| w < v).count();
                let equal = values.iter().filter(|&&w| w == v).count();
                below as f64 + (equal as f64 + 1.0) / 2.0
            })
            .collect()
    }

    #[test]
    fn orders_and_ranks_as_a_comparison_sort_does() {
        let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
        for n in [0, 1, 2, 3, 17, 256, 1000, 3001] {
            let values: Vec<f64> = (0..n).map(|_| numbers.value()).collect();
            let order: Vec<u32> =
                run(Want::Order, &values).chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
            assert_eq!(order, reference_order(&values), "order of {n}");
            let ranks: Vec<f64> =
                run(Want::Ranks, &values).chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
            let expected = reference_ranks(&values);
            assert!(
                ranks.iter().zip(&expected).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
                "ranks of {n}: {ranks:?} against {expected:?}"
            );
        }
    }

    #[test]
    fn sorts_keys_whose_digits_all_differ_and_all_agree() {
        // Every pass taken (keys differing in every 11-bit digit), and none (all equal).
        let wide: Vec<f64> =
            (0..500).map(|i| f64::from_bits(0x0123_4567_89ab_cdef_u64.wrapping_mul(i + 1) >> 1)).collect();
        let order: Vec<u32> =
            run(Want::Order, &wide).chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(order, reference_order(&wide));
        let same = vec![2.5; 100];
        let ranks: Vec<f64> =
            run(Want::Ranks, &same).chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(ranks, vec![50.5; 100]);
    }

    #[test]
    fn refuses_buffers_outside_memory_or_overlapping() {
        let mut memory = vec![0_u8; 4096];
        let request = |count, values, out, scratch| SortRequest { want: Want::Ranks, count, values, out, scratch };
        let refused = |r: SortRequest, memory: &mut [u8]| r.run(memory).unwrap_err();
        assert_eq!(refused(request(10, 0, 80, 4096 - 239), &mut memory), "a sort buffer outside its memory");
        assert_eq!(refused(request(usize::MAX / 4, 0, 0, 0), &mut memory), "a sort buffer outside its memory");
        assert_eq!(refused(request(10, 0, 79, 160), &mut memory), "sort buffers that overlap");
        assert_eq!(refused(request(10, 399, 0, 160), &mut memory), "sort buffers that overlap");
        assert_eq!(refused(request(10, 0, 80, 159), &mut memory), "sort buffers that overlap");
        assert!(memory.iter().all(|&b| b == 0), "a refused request wrote");
        request(10, 0, 80, 160).run(&mut memory).unwrap();
    }

    #[test]
    fn parses_what_the_driver_sends_and_nothing_else() {
        let numbers: Vec<u8> = [3_u32, 8, 40, 72].iter().flat_map(|v| v.to_le_bytes()).collect();
        let parsed = SortRequest::parse(&[b"ranks".as_slice(), &numbers].concat()).unwrap();
        assert_eq!(parsed, SortRequest { want: Want::Ranks, count: 3, values: 8, out: 40, scratch: 72 });
        assert_eq!(SortRequest::parse(&[b"order".as_slice(), &numbers].concat()).unwrap().want, Want::Order);
        assert_eq!(
            SortRequest::parse(&[b"order".as_slice(), &numbers[..15]].concat()),
            Err("a malformed sort request")
        );
        assert_eq!(SortRequest::parse(&[b"shuffle".as_slice(), &numbers].concat()), Err("an unknown sort request"));
    }
}
