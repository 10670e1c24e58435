//! The on-disk compile cache: compiled components keyed by the source file's content hash and the
//! engine's compatibility hash, so a restart or the reload of a file seen before skips Cranelift.
//!
//! A compiled artifact is native code that wasmtime runs without checking it, so an entry is
//! trusted only if this host wrote it for exactly this source: every entry is `MAGIC`, then an
//! HMAC-SHA-256 under the host's secret [`CacheKey`] over the source file's content hash, the
//! engine's compatibility hash and the artifact, then the artifact. Whoever can write to the cache
//! folder (or copy entries around in it) but cannot read the key cannot make an entry that passes:
//! an entry moved to another source's name, or forged without the key, fails, is deleted with a
//! warning naming it, and the component is recompiled. A different engine configuration (or
//! wasmtime version) has a different compatibility hash, so it never even looks at old entries.
//!
//! `key` is the secret and its file, `entries` the folder of entries, `location` where both live.

#[cfg(windows)]
mod access;
mod entries;
mod key;
mod location;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::observe::metrics::Metrics;

pub use entries::{Artifact, CompileCache};
pub(crate) use key::hex;
pub use key::{CacheKey, ContentHash, content_hash};
pub use location::CacheLocation;

/// Takes the code of `bytes` (read from `path`, SHA-256 `hash`) from `cache`, or compiles it
/// for `engine` (a failure is `compile_error`'s); then `prepare` makes it ready to serve (linking,
/// `describe`). Only code that got ready is stored in the cache; the hit or miss is counted in
/// `metrics`.
pub(crate) fn load_or_compile<A: Artifact, T, E>(
    engine: &wasmtime::Engine,
    cache: Option<&CompileCache>,
    metrics: &Metrics,
    (path, bytes, hash): (&Path, &[u8], &ContentHash),
    compile_error: impl FnOnce(wasmtime::Error) -> E,
    prepare: impl FnOnce(&A) -> Result<T, E>,
) -> Result<(T, Compiled), E> {
    let started = Instant::now();
    let cached = cache.and_then(|c| c.load::<A>(engine, path, hash));
    let from_cache = cached.is_some();
    let code = match cached {
        Some(code) => code,
        None => A::compile(engine, bytes).map_err(compile_error)?,
    };
    let took = started.elapsed();
    let ready = prepare(&code)?;
    let whole = started.elapsed();
    let compiled = if from_cache {
        metrics.cache_hits.inc();
        Compiled::FromCache { read: took, ready: whole }
    } else {
        metrics.cache_misses.inc();
        if let Some(cache) = cache {
            cache.store(engine, hash, &code);
        }
        Compiled::Fresh { compile: took, ready: whole }
    };
    Ok((ready, compiled))
}

/// Where a module's machine code came from, how long getting it took, and how long the whole load
/// took (code, linking and `describe`): the time until it could serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled with Cranelift.
    Fresh {
        /// Compiling.
        compile: Duration,
        /// The whole load.
        ready: Duration,
    },
    /// Read from the compile cache.
    FromCache {
        /// Reading and checking the entry.
        read: Duration,
        /// The whole load.
        ready: Duration,
    },
}

impl std::fmt::Display for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        match self {
            Self::Fresh { compile, ready } => {
                write!(f, "compiled in {:.1} ms, ready in {:.1} ms", ms(compile), ms(ready))
            }
            Self::FromCache { read, ready } => {
                write!(f, "cache hit in {:.1} ms, ready in {:.1} ms", ms(read), ms(ready))
            }
        }
    }
}
