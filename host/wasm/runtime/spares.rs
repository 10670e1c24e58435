//! What an engine shares with its preparing thread: instances made ahead of the calls that take
//! them, and the stores of finished calls waiting to be freed off the calls' path (script
//! engines' components and the data-science engine).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Instances kept ready: a call takes one, and one is made to replace it off the call's path.
/// None is ever used twice.
const READY: usize = 2;

/// Stores of finished calls that may wait for the preparing thread to free them; past this, a call
/// frees its own. Each one may hold a slot of the instance pool, which has room beside the calls
/// for only a few per engine: under a burst the preparing thread may not run for a while, and the
/// waiting stores must not fill the pool (calls would then fail for want of a slot).
const SPENT_BACKLOG: usize = 4;

/// Instances `F` made ahead, and stores `S` of finished calls.
pub(in crate::wasm) struct Spares<F, S> {
    ready: Mutex<Vec<F>>,
    spent: Mutex<Vec<S>>,
    /// Wakes the preparing thread when an instance was taken or a store handed back.
    wanted: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<F, S> Default for Spares<F, S> {
    fn default() -> Self {
        Self { ready: Mutex::new(Vec::new()), spent: Mutex::new(Vec::new()), wanted: Condvar::new() }
    }
}

impl<F, S> Spares<F, S> {
    /// An instance made ahead, if one is ready; the preparing thread is told to make another.
    pub(in crate::wasm) fn take(&self) -> Option<F> {
        let prepared = lock(&self.ready).pop();
        self.wanted.notify_one();
        prepared
    }

    /// Hands a finished call's store to the preparing thread to free, or frees it now when
    /// `SPENT_BACKLOG` stores already wait.
    pub(in crate::wasm) fn discard(&self, store: S) {
        let mut spent = lock(&self.spent);
        if spent.len() >= SPENT_BACKLOG {
            drop(spent);
            drop(store);
            return;
        }
        spent.push(store);
        drop(spent);
        self.wanted.notify_one();
    }

    /// For the preparing thread: waits until an instance is missing, a store waits to be freed or
    /// `stop` is true (at most a second, so that the thread notices its engine is gone), frees
    /// the waiting stores, and says whether an instance is missing.
    pub(in crate::wasm) fn wait(&self, stop: impl Fn() -> bool) -> bool {
        let missing = {
            let ready = lock(&self.ready);
            let (ready, _) = self
                .wanted
                .wait_timeout_while(ready, Duration::from_secs(1), |ready| {
                    ready.len() >= READY && lock(&self.spent).is_empty() && !stop()
                })
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            ready.len() < READY
        };
        // Taken out first: a call handing back its store must not wait while these are freed.
        let spent = std::mem::take(&mut *lock(&self.spent));
        drop(spent);
        missing
    }

    /// An instance the preparing thread made, for a later call.
    pub(in crate::wasm) fn add(&self, fresh: F) {
        lock(&self.ready).push(fresh);
    }

    /// Wakes the preparing thread from `wait`, after what its `stop` reads changed.
    #[cfg(feature = "native")]
    pub(in crate::wasm) fn wake(&self) {
        drop(lock(&self.ready));
        self.wanted.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, Sender, channel};

    use super::*;

    /// A finished call's store: one whose freeing waits until the test lets it go, or one freed
    /// at once.
    enum Store {
        Held { freeing: Sender<()>, release: Receiver<()> },
        Plain,
    }

    impl Drop for Store {
        fn drop(&mut self) {
            if let Self::Held { freeing, release } = self {
                freeing.send(()).ok();
                release.recv().ok();
            }
        }
    }

    #[test]
    fn a_call_hands_its_store_back_while_older_ones_are_freed() {
        let deadline = Duration::from_secs(10);
        let spares: Arc<Spares<(), Store>> = Arc::default();
        let ((freeing, being_freed), (release, released)) = (channel(), channel());
        spares.discard(Store::Held { freeing, release: released });
        let preparer = {
            let spares = spares.clone();
            std::thread::spawn(move || {
                spares.wait(|| true);
            })
        };
        being_freed.recv_timeout(deadline).expect("the preparing thread frees the waiting store");
        // While that store is being freed, a call ends and hands its own back.
        let (handed, handed_back) = channel();
        let caller = {
            let spares = spares.clone();
            std::thread::spawn(move || {
                spares.discard(Store::Plain);
                handed.send(()).ok();
            })
        };
        let outcome = handed_back.recv_timeout(deadline);
        release.send(()).expect("the store is still being freed");
        preparer.join().expect("preparing thread");
        caller.join().expect("calling thread");
        outcome.expect("the call handed its store back without waiting for the older one to be freed");
    }
}
