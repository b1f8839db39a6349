//! Blocking work off the worker thread (ARCHITECTURE.md decision 14).
//!
//! [`Conn::offload`](crate::Conn::offload) hands a closure to the worker's helper
//! thread (one per worker, started on first use). The helper runs jobs one at a time,
//! queues each result with the token of the connection that asked, and wakes the
//! worker ([`Waker`]); the worker's next `flush` takes the results and calls each
//! connection's [`Handler::on_offload`](crate::Handler::on_offload) on the worker.
//! A result whose connection closed meanwhile (slot gone, reused under a new
//! generation, or closing) is dropped on the worker: an owned `File` in it is closed
//! there, so nothing leaks. The helper never touches a connection or an op's memory.
//!
//! The helper thread is detached: a job stuck in the kernel (an open on a dead NFS
//! server) holds only the helper, never the worker or shutdown.

use ringcore_runtime::{Token, Waker};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A job's result (or the payload of its panic).
pub(crate) type Outcome = Box<dyn Any + Send>;
type Job = Box<dyn FnOnce() -> Outcome + Send>;
type Done = Arc<Mutex<Vec<(Token, Outcome)>>>;

/// One worker's helper thread and its finished results.
pub(crate) struct Offload {
    worker: usize,
    pub(crate) waker: Option<Waker>,
    tx: Option<mpsc::Sender<(Token, Job)>>,
    done: Done,
    /// Jobs submitted whose result has not been taken yet.
    pub(crate) in_flight: usize,
}

impl Offload {
    pub(crate) fn new(worker: usize) -> Offload {
        Offload {
            worker,
            waker: None,
            tx: None,
            done: Arc::new(Mutex::new(Vec::new())),
            in_flight: 0,
        }
    }

    /// Runs `job` on the helper thread; its result comes back tagged with `token`.
    pub(crate) fn submit(&mut self, token: Token, job: Job) {
        let job = match &self.tx {
            Some(tx) => match tx.send((token, job)) {
                Ok(()) => {
                    self.in_flight += 1;
                    return;
                }
                // The helper is gone (it never exits while we hold the sender, but a
                // failed thread could): start another.
                Err(mpsc::SendError((_, job))) => job,
            },
            None => job,
        };
        match self.spawn() {
            Ok(tx) => {
                // A fresh channel whose receiver lives in the new thread: cannot fail.
                let _ = tx.send((token, job));
                self.tx = Some(tx);
            }
            Err(e) => {
                // No thread (EAGAIN under a thread limit): run it here rather than lose
                // the request; the result is delivered the same way.
                tracing::warn!(
                    worker = self.worker,
                    "ringcore: no offload thread ({e}); running the job on the worker"
                );
                let out = run(job);
                lock(&self.done).push((token, out));
                if let Some(w) = &self.waker {
                    w.wake();
                }
            }
        }
        self.in_flight += 1;
    }

    fn spawn(&self) -> std::io::Result<mpsc::Sender<(Token, Job)>> {
        let (tx, rx) = mpsc::channel::<(Token, Job)>();
        let done = self.done.clone();
        let waker = self.waker.clone();
        std::thread::Builder::new()
            .name(format!("ringcore-w{}-off", self.worker))
            .spawn(move || {
                // Ends when the worker's `Offload` (the sender) is dropped.
                while let Ok((token, job)) = rx.recv() {
                    let out = run(job);
                    lock(&done).push((token, out));
                    if let Some(w) = &waker {
                        w.wake();
                    }
                }
            })?;
        Ok(tx)
    }

    /// The results finished so far.
    pub(crate) fn take(&mut self) -> Vec<(Token, Outcome)> {
        let out = std::mem::take(&mut *lock(&self.done));
        self.in_flight -= out.len();
        out
    }
}

fn run(job: Job) -> Outcome {
    catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|payload| payload)
}

fn lock(done: &Done) -> std::sync::MutexGuard<'_, Vec<(Token, Outcome)>> {
    done.lock().unwrap_or_else(|e| e.into_inner())
}
