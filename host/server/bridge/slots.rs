//! The call slots: how many calls run at once (back-pressure, not failure).

use std::sync::Arc;

use tokio::sync::Semaphore;

/// The slots for calls running at once. A call takes a slot before it starts and gives it back
/// when it ends however it ends, so calls beyond the limit wait (back-pressure) instead of piling
/// up threads and guest memory.
#[derive(Clone, Debug)]
pub struct CallSlots {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl CallSlots {
    /// `capacity` slots.
    pub fn new(capacity: usize) -> Self {
        Self { semaphore: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// Waits for a free slot.
    pub(crate) async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring cannot fail.
        self.semaphore.clone().acquire_owned().await.expect("call slots are never closed")
    }
}
