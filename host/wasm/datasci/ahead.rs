//! Data-science instances made ahead of the evaluations that take them, by a thread of the
//! engine's own, with the pages a typical evaluation writes already copied in.
//!
//! A fresh instance maps the engine's ~250 MB image copy-on-write; an evaluation then writes to a
//! few hundred pages scattered over the interpreter's heap (reference counts, the allocator, the
//! frame stack), and each first write is a page fault that copies the page. The preparing thread
//! makes those copies before a call takes the instance: at load, two sample evaluations chosen by
//! the host (no user's script or data) show which pages every evaluation writes
//! (`/proc/self/pagemap`: the pages that became private copies in both), and every instance made
//! ahead gets those pages written with their own image content, copied from an instance that
//! never runs. Nothing changes in the instance's memory; only where its pages live. Each instance
//! is still used by one evaluation only, and the stores of finished ones are freed by the same
//! thread, off the call's path. Calls of Python function files take their instances here too.

use std::ops::Range;
use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::{Instance, Store};

use crate::error::CallError;
use crate::wasm::runtime::spares::Spares;

use super::runtime::DataSciState;

/// The granularity of the pages copied ahead, and of `/proc/self/pagemap`'s entries on the
/// hosts where pages are recorded (x86-64 Linux, whose pages are 4 KiB).
#[cfg(unix)]
const PAGE: usize = 4096;

/// A fresh instance of the engine in its own store, never run.
pub(super) type Fresh = (Store<DataSciState>, Instance);

/// Makes a fresh instance of the engine (no input, no cancel flag: `arm` gives the call's).
pub(super) type Make = Box<dyn Fn() -> Result<Fresh, CallError> + Send + Sync>;

/// What the engine and its preparing thread share.
pub(super) struct Ahead {
    make: Make,
    /// Instances made ahead, never run, and stores of finished evaluations to free.
    spares: Spares<Fresh, Store<DataSciState>>,
}

impl Ahead {
    /// Starts the preparing thread of an engine that `make` instantiates; it copies `pages` of
    /// the memory into each instance it makes, and ends once the returned value is dropped.
    pub(super) fn start(make: Make, pages: Vec<Range<usize>>, name: &str) -> std::io::Result<Arc<Self>> {
        let ahead = Arc::new(Self { make, spares: Spares::default() });
        let weak = Arc::downgrade(&ahead);
        let name = name.to_owned();
        std::thread::Builder::new()
            .name("sse-wasm-prepare-datasci".into())
            .spawn(move || prepare(&weak, &pages, &name))?;
        Ok(ahead)
    }

    /// A fresh instance for one evaluation: one made ahead, or one made now.
    pub(super) fn take(&self) -> Result<Fresh, CallError> {
        self.spares.take().map_or_else(|| (self.make)(), Ok)
    }

    /// Hands a finished evaluation's store to the preparing thread to free (or frees it now).
    pub(super) fn discard(&self, store: Store<DataSciState>) {
        self.spares.discard(store);
    }
}

/// Keeps a few instances made while the engine lives, each with `pages` copied in from an
/// instance that never runs.
fn prepare(ahead: &Weak<Ahead>, pages: &[Range<usize>], name: &str) {
    let mut pristine: Option<Fresh> = None;
    loop {
        let Some(ahead) = ahead.upgrade() else { return };
        if !ahead.spares.wait(|| false) {
            continue;
        }
        let made = (ahead.make)().and_then(|mut fresh| {
            if !pages.is_empty() {
                if pristine.is_none() {
                    pristine = Some((ahead.make)()?);
                }
                if let Some(pristine) = &mut pristine {
                    copy_pages(pristine, &mut fresh, pages);
                }
            }
            Ok(fresh)
        });
        match made {
            Ok(fresh) => ahead.spares.add(fresh),
            Err(error) => {
                // Calls instantiate for themselves meanwhile, and report what fails.
                tracing::warn!("{name}: cannot prepare a data-science instance: {error}");
                drop(ahead);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Writes `pages` of `fresh`'s memory with the same bytes from `pristine`'s: the contents stay
/// the image's, and the pages become `fresh`'s own before its call touches them.
fn copy_pages(pristine: &mut Fresh, fresh: &mut Fresh, pages: &[Range<usize>]) {
    let (Some(from), Some(to)) = (memory(&mut pristine.0, &pristine.1), memory(&mut fresh.0, &fresh.1)) else {
        return;
    };
    let (from, to) = (from.data(&pristine.0), to.data_mut(&mut fresh.0));
    for range in pages {
        let end = range.end.min(from.len()).min(to.len());
        if range.start < end {
            to[range.start..end].copy_from_slice(&from[range.start..end]);
        }
    }
}

fn memory(store: &mut Store<DataSciState>, instance: &Instance) -> Option<wasmtime::Memory> {
    instance.get_memory(store, "memory")
}

/// The byte ranges of the memory of `instance` whose pages it has written since it was made
/// (private copies of the image's pages, or new pages), as the kernel's page map says; none
/// where the page map cannot be read (not Linux, not 4 KiB pages). Only a hint of which pages
/// to copy ahead: no reset relies on it.
pub(super) fn written_pages(store: &mut Store<DataSciState>, instance: &Instance) -> Vec<Range<usize>> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Vec::new();
    }
    let Some(memory) = memory(store, instance) else { return Vec::new() };
    let (base, len) = (memory.data_ptr(&*store) as usize, memory.data_size(&*store));
    page_map(base, len).unwrap_or_default()
}

#[cfg(unix)]
fn page_map(base: usize, len: usize) -> std::io::Result<Vec<Range<usize>>> {
    use std::os::unix::fs::FileExt;
    if !base.is_multiple_of(PAGE) {
        return Ok(Vec::new());
    }
    let map = std::fs::File::open("/proc/self/pagemap")?;
    let pages = len / PAGE;
    let mut entries = vec![0u8; pages * 8];
    map.read_exact_at(&mut entries, (base / PAGE * 8) as u64)?;
    let mut written: Vec<Range<usize>> = Vec::new();
    for (page, entry) in entries.chunks_exact(8).enumerate() {
        let entry = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
        // Present, and not a page of a file (the image): a private copy the instance wrote.
        let (present, file) = (entry & (1 << 63) != 0, entry & (1 << 61) != 0);
        if present && !file {
            let at = page * PAGE;
            match written.last_mut() {
                Some(last) if last.end == at => last.end = at + PAGE,
                _ => written.push(at..at + PAGE),
            }
        }
    }
    Ok(written)
}

#[cfg(not(unix))]
fn page_map(_base: usize, _len: usize) -> std::io::Result<Vec<Range<usize>>> {
    Ok(Vec::new())
}

/// The ranges both `a` and `b` hold, each sorted and disjoint.
pub(super) fn common(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j, mut both) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (start, end) = (a[i].start.max(b[j].start), a[i].end.min(b[j].end));
        if start < end {
            both.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    both
}

#[cfg(test)]
mod tests {
    use super::common;

    #[test]
    fn common_ranges_are_what_both_sets_hold() {
        assert_eq!(common(&[0..4, 8..12], &[2..10, 11..16, 20..24]), vec![2..4, 8..10, 11..12]);
        let (whole, part) = ([0..8, 20..21], [3..5, 30..31]);
        assert!(common(&[], &part).is_empty());
        assert_eq!(common(&whole, &whole), whole.to_vec());
    }
}
