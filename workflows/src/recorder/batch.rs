//! The batching loop shared by the engine's writer, claims and enqueues: submissions gather
//! while earlier batches are in flight, and each batch is handed whole to a handler, which
//! answers every submission itself.

use std::{future::Future, sync::Arc};

use tokio::sync::{Semaphore, mpsc};

/// Sends submissions to a batching task; cheap to clone.
pub(crate) struct Batcher<T> {
    tx: mpsc::UnboundedSender<T>,
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static> Batcher<T> {
    /// Starts the task on the current tokio runtime: up to `in_flight` batches of at most
    /// `max_batch` submissions run through `handle` at once. It ends when every clone of the
    /// batcher is dropped.
    pub(crate) fn spawn<F, Fut>(max_batch: usize, in_flight: usize, handle: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<T>();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(in_flight));
            let mut batch = Vec::new();
            loop {
                // Wait for a free slot first: meanwhile submissions gather into the next batch.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                if rx.recv_many(&mut batch, max_batch).await == 0 {
                    return;
                }
                let work = handle(std::mem::take(&mut batch));
                tokio::spawn(async move {
                    work.await;
                    drop(slot);
                });
            }
        });
        Batcher { tx }
    }

    /// Hands `item` to the task; `false` if the task has stopped.
    pub(crate) fn send(&self, item: T) -> bool {
        self.tx.send(item).is_ok()
    }
}
