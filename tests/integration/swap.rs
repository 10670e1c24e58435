//! Isolation under memory pressure: a call's pages that the kernel swapped out while it ran are
//! reset like any other before its instance slot serves the next call.
//!
//! The attack, performed for real: a swap file is turned on, a guest fills 16 MiB of its memory
//! with a mark and keeps running, the whole host process is paged out from outside
//! (`process_madvise(MADV_PAGEOUT)`, what memory pressure does to a busy server), the guest's
//! call ends, and later calls of the same component count the marked pages they can read.
//!
//! Needs root (swapon, and paging out another process). Without it the test says so and passes;
//! with `SSE_WASM_REQUIRE_SWAP` set (as `.ci/run` sets it) it fails instead.

#![allow(unsafe_code)] // Two system calls with no safe wrapper: pidfd_open and process_madvise.

use std::path::{Path, PathBuf};

use tonic::Code;

use crate::util::*;

/// Memory the guest marks.
const MIB: f64 = 16.0;

/// A swap file that is on while this lives, and off and removed after.
struct Swap {
    file: PathBuf,
}

impl Swap {
    /// Turns a swap file of `mib` MiB in `dir` on; why not, when it cannot be.
    fn on(dir: &Path, mib: usize) -> Result<Self, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".to_owned());
        }
        let file = dir.join("sse-wasm-test.swap");
        // Written, not sparse: the kernel refuses a swap file with holes.
        std::fs::write(&file, vec![0u8; mib << 20]).map_err(|e| format!("writing {}: {e}", file.display()))?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let swap = Self { file };
        for (command, args) in [("mkswap", vec!["-q"]), ("swapon", vec![])] {
            let status = std::process::Command::new(command).args(args).arg(&swap.file).status();
            match status {
                Ok(status) if status.success() => {}
                other => return Err(format!("{command} {}: {other:?}", swap.file.display())),
            }
        }
        Ok(swap)
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let _ = std::process::Command::new("swapoff").arg(&self.file).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Pages every writable private mapping of process `pid` out to swap, as the kernel does under
/// memory pressure; the bytes the kernel took the advice for.
fn page_out(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("the host's mappings");
    // SAFETY: pidfd_open takes a pid and flags and returns a descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as libc::c_int;
    assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    let mut advised = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        if !perms.starts_with("rw") || !perms.ends_with('p') {
            continue;
        }
        let (start, end) = range.split_once('-').expect("a range");
        let start = usize::from_str_radix(start, 16).expect("hex");
        let end = usize::from_str_radix(end, 16).expect("hex");
        let iov = libc::iovec { iov_base: start as *mut libc::c_void, iov_len: end - start };
        // SAFETY: the vector is one valid iovec; the addresses are the other process's, which the
        // kernel checks.
        let n = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                pidfd,
                &iov as *const libc::iovec,
                1usize,
                libc::MADV_PAGEOUT,
                0u32,
            )
        };
        if n > 0 {
            advised += n as usize;
        }
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(pidfd) };
    advised
}

/// Memory of process `pid` now in swap, in bytes.
fn swapped(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib = status.lines().find_map(|l| l.strip_prefix("VmSwap:")).map(|v| v.trim().trim_end_matches(" kB"));
    kib.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_swapped_out_during_a_call_never_reach_the_next_call() {
    let swap_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let _swap = match Swap::on(swap_dir.path(), 512) {
        Ok(swap) => swap,
        Err(why) if std::env::var_os("SSE_WASM_REQUIRE_SWAP").is_some() => {
            panic!("SSE_WASM_REQUIRE_SWAP is set but swap cannot be turned on: {why}")
        }
        Err(why) => {
            eprintln!("not run: swap cannot be turned on here ({why}); CI runs it as root");
            return;
        }
    };
    let root = tempfile::tempdir().expect("temp dir");
    let binary = Binary::start(root.path(), &["hostile_calls"], &["--call-timeout", "3"], "info").await;
    let pid = binary.child.id().expect("running");
    let mut client = binary.client().await;
    let count = || bundles(numbers(&[MIB]), 1);
    for _ in 0..4 {
        let seen = call(&mut client, "CountMarks", count()).await.expect("CountMarks").numbers();
        assert_eq!(seen, [0.0], "no marks before any were written");
    }

    let mut dirtying = client.clone();
    let dirty = tokio::spawn(async move { call(&mut dirtying, "Dirty", bundles(numbers(&[MIB]), 1)).await });
    let log = binary.log();
    eventually("the guest has marked its memory", || {
        let log = log();
        async move { log.iter().any(|l| l.contains("dirtied 16 MiB")) }
    })
    .await;
    let advised = page_out(pid);
    let out = swapped(pid);
    assert!(out >= 16 << 20, "the host was paged out ({advised} bytes advised, {out} bytes in swap)");
    assert_status(dirty.await.expect("join"), Code::DeadlineExceeded, &["Dirty"]);

    // The slot the marked memory lived in serves the component's next calls, one at a time and
    // several at once.
    let mut seen = 0.0;
    for _ in 0..20 {
        seen += call(&mut client, "CountMarks", count()).await.expect("CountMarks after the page-out").numbers()[0];
    }
    let concurrent: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut seen = 0.0;
                for _ in 0..4 {
                    seen += call(&mut client, "CountMarks", bundles(numbers(&[MIB]), 1))
                        .await
                        .expect("CountMarks")
                        .numbers()[0];
                }
                seen
            })
        })
        .collect();
    for task in concurrent {
        seen += task.await.expect("join");
    }
    assert_eq!(seen, 0.0, "later calls read {seen} pages of 4 KiB marked by an earlier call");
}
