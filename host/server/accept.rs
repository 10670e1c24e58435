//! Accepting connections: every socket without Nagle's delay, and an accept that fails (out of
//! file descriptors, the kernel's limits) counted, logged at most every few seconds, and tried
//! again after a pause, while the connections already open keep being served.

use std::io;
use std::time::{Duration, Instant};

use futures::Stream;
use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpListener, TcpStream};

/// How long the listener waits after any failed accept, so that it does not spin on the same
/// error (out of descriptors, typically) until a descriptor is freed.
const PAUSE: Duration = Duration::from_millis(50);

/// How often failed accepts are logged while they go on.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The connections `listener` accepts, for the server. Never ends and never yields an error: a
/// failed accept is counted in `errors` and logged here.
pub(super) fn incoming(listener: TcpListener, errors: Counter) -> impl Stream<Item = io::Result<TcpStream>> {
    let state = (listener, Failures { errors, unlogged: 0, logged: None, since_recovery: 0 });
    futures::stream::unfold(state, |(listener, mut failures)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    failures.recovered();
                    // Nagle's algorithm would hold small answers back for the peer's delayed ACK
                    // (~40 ms a call). A socket the peer already reset fails here; the server
                    // then finds it closed.
                    let _ = stream.set_nodelay(true);
                    return Some((Ok(stream), (listener, failures)));
                }
                Err(error) => {
                    failures.failed(&error);
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
    })
}

/// Failed accepts since the listener last accepted one.
struct Failures {
    errors: Counter,
    /// Failures not logged yet.
    unlogged: u64,
    /// When a failure was last logged.
    logged: Option<Instant>,
    /// Failures since the last accept that succeeded.
    since_recovery: u64,
}

impl Failures {
    fn failed(&mut self, error: &io::Error) {
        self.errors.inc();
        self.unlogged += 1;
        self.since_recovery += 1;
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::error!(
                "cannot accept connections: {error} ({} failure(s) since the last report); calls on open \
                 connections go on, new ones wait (raise the open files limit, `ulimit -n`, if this lasts)",
                self.unlogged
            );
            self.unlogged = 0;
            self.logged = Some(Instant::now());
        }
    }

    fn recovered(&mut self) {
        if self.since_recovery > 0 {
            tracing::warn!("accepting connections again after {} failed accept(s)", self.since_recovery);
            self.since_recovery = 0;
            self.unlogged = 0;
            self.logged = None;
        }
    }
}
