//! Capture of what Qlik sent (`--capture DIR`, off by default): each function call's request
//! headers and messages, byte for byte, in a file of its own, for `sse-wasm call --replay` to run
//! again without Qlik. Bounded in files and bytes: past either, the oldest captures are removed;
//! one call larger than the whole allowance is cut (and says so).
//!
//! A capture file is `SSECAP1\n`, then records of a kind byte, a little-endian u32 length and the
//! bytes: `F` the function's name, `H` a header (its name, a NUL, its value), `M` one request
//! message as it arrived, `T` the capture was cut here.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

const MAGIC: &[u8] = b"SSECAP1\n";
const EXTENSION: &str = "ssecap";

/// What to capture, and how much to keep.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The folder captures go to (made if missing).
    pub dir: PathBuf,
    /// The functions captured by name; empty captures every function.
    pub functions: Vec<String>,
    /// The most capture files kept.
    pub max_files: usize,
    /// The most bytes all capture files together take.
    pub max_bytes: u64,
}

/// The captures of a server.
#[derive(Debug)]
pub struct Capture {
    options: CaptureOptions,
    /// The files kept, oldest first, with their sizes.
    kept: Mutex<VecDeque<(PathBuf, u64)>>,
    sequence: AtomicU64,
}

impl Capture {
    /// Captures into `options.dir`, counting the captures already there against the limits.
    pub fn open(options: CaptureOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.dir)
            .map_err(|e| anyhow::anyhow!("cannot make the capture folder {}: {e}", options.dir.display()))?;
        let mut kept: Vec<(PathBuf, u64)> = std::fs::read_dir(&options.dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
            .map(|p| {
                let size = p.metadata().map_or(0, |m| m.len());
                (p, size)
            })
            .collect();
        // Names start with the time: by name is oldest first.
        kept.sort();
        Ok(Self { options, kept: Mutex::new(kept.into()), sequence: AtomicU64::new(0) })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// Starts capturing a call of `function` with `headers` (name and raw value each), if this
    /// function is captured; `None` when it is not, or the file cannot be made (logged).
    pub fn start(self: &Arc<Self>, function: &str, headers: &[(&str, &[u8])]) -> Option<CallCapture> {
        if !self.options.functions.is_empty() && !self.options.functions.iter().any(|f| f == function) {
            return None;
        }
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let path = self.options.dir.join(format!("{millis:015}-{sequence:06}-{function}.{EXTENSION}"));
        self.make_room(0);
        let file = match File::create(&path) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!("cannot capture a call of {function} in {}: {e}", path.display());
                return None;
            }
        };
        let mut capture = CallCapture { capture: self.clone(), path, file: BufWriter::new(file), bytes: 0, cut: false };
        capture.record(b'F', &[function.as_bytes()]);
        for (name, value) in headers {
            capture.record(b'H', &[name.as_bytes(), b"\0", value]);
        }
        Some(capture)
    }

    /// Removes the oldest captures until one more file of `incoming` bytes fits.
    fn make_room(&self, incoming: u64) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let mut total: u64 = kept.iter().map(|(_, size)| size).sum();
        while !kept.is_empty() && (kept.len() >= self.options.max_files || total + incoming > self.options.max_bytes) {
            let (oldest, size) = kept.pop_front().expect("not empty");
            total -= size;
            let _ = std::fs::remove_file(oldest);
        }
    }
}

/// One call being captured; the file is complete when this is dropped.
pub struct CallCapture {
    capture: Arc<Capture>,
    path: PathBuf,
    file: BufWriter<File>,
    bytes: u64,
    cut: bool,
}

impl CallCapture {
    fn record(&mut self, kind: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let header = [[kind].as_slice(), &(len as u32).to_le_bytes()].concat();
        let first = self.bytes == 0;
        let written = (if first { self.file.write_all(MAGIC) } else { Ok(()) })
            .and_then(|()| self.file.write_all(&header))
            .and_then(|()| parts.iter().try_for_each(|p| self.file.write_all(p)));
        if let Err(e) = written {
            tracing::warn!("capture {} failed: {e}", self.path.display());
            self.cut = true;
        }
        self.bytes += (if first { MAGIC.len() } else { 0 } + header.len() + len) as u64;
    }

    /// Records one request message as it arrived; past the capture allowance the capture is cut.
    pub fn message(&mut self, message: &Bytes) {
        if self.cut {
            return;
        }
        if self.bytes + message.len() as u64 + 5 > self.capture.options.max_bytes {
            self.record(b'T', &[]);
            self.cut = true;
            tracing::warn!("capture {} cut at --capture-max-mib", self.path.display());
            return;
        }
        self.record(b'M', &[message]);
    }
}

impl Drop for CallCapture {
    fn drop(&mut self) {
        let _ = self.file.flush();
        self.capture.make_room(self.bytes);
        self.capture.kept.lock().unwrap_or_else(|e| e.into_inner()).push_back((self.path.clone(), self.bytes));
    }
}

/// A capture file, read back.
#[derive(Debug, Default)]
pub struct Captured {
    /// The function's name when it was captured.
    pub function: String,
    /// The request headers, by name.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request messages, in order.
    pub messages: Vec<Bytes>,
    /// True when the capture was cut at its size limit: later messages are missing.
    pub cut: bool,
}

/// Reads the capture file at `path`.
pub fn read(path: &Path) -> anyhow::Result<Captured> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| anyhow::anyhow!("{} is not a capture (sse-wasm --capture writes them)", path.display()))?;
    let mut captured = Captured::default();
    while let [kind, a, b, c, d, tail @ ..] = rest {
        let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
        let Some((body, tail)) = tail.split_at_checked(len) else {
            anyhow::bail!("{} ends inside a record: the capture is incomplete", path.display());
        };
        match kind {
            b'F' => captured.function = String::from_utf8_lossy(body).into_owned(),
            b'H' => {
                let (name, value) = body.split_at(body.iter().position(|&b| b == 0).unwrap_or(body.len()));
                let value = value.get(1..).unwrap_or_default();
                captured.headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
            }
            b'M' => captured.messages.push(Bytes::copy_from_slice(body)),
            b'T' => captured.cut = true,
            other => anyhow::bail!("{}: an unknown record kind {other}", path.display()),
        }
        rest = tail;
    }
    anyhow::ensure!(rest.is_empty(), "{} ends inside a record: the capture is incomplete", path.display());
    Ok(captured)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, max_files: usize, max_bytes: u64) -> CaptureOptions {
        CaptureOptions { dir: dir.to_owned(), functions: Vec::new(), max_files, max_bytes }
    }

    #[test]
    fn a_capture_reads_back_as_it_was_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let capture = Arc::new(Capture::open(options(dir.path(), 10, 1 << 20)).expect("opens"));
        let path = {
            let mut call = capture.start("SumOfRows", &[("qlik-functionrequestheader-bin", b"\x08\x01")]).expect("on");
            call.message(&Bytes::from_static(b"\x0a\x02\x0a\x00"));
            call.message(&Bytes::new());
            call.path.clone()
        };
        let captured = read(&path).expect("reads");
        assert_eq!(captured.function, "SumOfRows");
        assert_eq!(captured.headers, [("qlik-functionrequestheader-bin".to_owned(), b"\x08\x01".to_vec())]);
        assert_eq!(captured.messages, [Bytes::from_static(b"\x0a\x02\x0a\x00"), Bytes::new()]);
        assert!(!captured.cut);
    }

    #[test]
    fn the_oldest_captures_go_and_a_call_too_large_is_cut() {
        let dir = tempfile::tempdir().expect("temp dir");
        let capture = Arc::new(Capture::open(options(dir.path(), 3, 200)).expect("opens"));
        for _ in 0..5 {
            capture.start("F", &[]).expect("on").message(&Bytes::from_static(&[1; 10]));
        }
        let files = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(files, 3, "at most three files");
        let path = {
            let mut call = capture.start("F", &[]).expect("on");
            call.message(&Bytes::from(vec![7; 150]));
            call.message(&Bytes::from(vec![8; 150]));
            call.path.clone()
        };
        let captured = read(&path).expect("reads");
        assert_eq!((captured.messages.len(), captured.cut), (1, true));
        let total: u64 =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("e").metadata().expect("m").len()).sum();
        assert!(total <= 200, "{total} bytes kept");
    }

    #[test]
    fn only_the_named_functions_are_captured() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = CaptureOptions { functions: vec!["A".into()], ..options(dir.path(), 10, 1 << 20) };
        let capture = Arc::new(Capture::open(options).expect("opens"));
        assert!(capture.start("A", &[]).is_some());
        assert!(capture.start("B", &[]).is_none());
    }
}
