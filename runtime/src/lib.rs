//! # ringcore-runtime
//!
//! Per-core workers, each with its own io_uring (or epoll) backend, a token-keyed
//! registry of in-flight ops, a timer wheel and counters. `ringcore-net` builds the
//! socket/connection layer and the callback handler API on top of it.
//!
//! ```text
//!   Service (ringcore-net)          Io::submit(token, Op)      Completion { token, result, flags }
//!        ^                                  |                               ^
//!        |  complete() / expire() / flush() v                               |
//!   worker loop ----- wait (one io_uring_enter / epoll_wait per turn) -----+
//!                     Driver::Uring (SQE/CQE)  |  Driver::Epoll (readiness -> syscall)
//! ```
//!
//! One request's path: a callback's request becomes an [`Op`]; the backend turns it
//! into an SQE or a syscall on readiness; the result comes back as a [`Completion`]
//! carrying the same [`Token`]; the service maps the token to its [`Registry`] slot and
//! calls the user's callback.

#![warn(missing_docs)]

pub mod affinity;
pub mod backend;
mod backend_kind;
pub mod completion;
pub mod config;
mod epoll;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod io;
pub mod metrics;
pub mod op;
pub mod ratelimit;
pub mod registry;
pub mod signals;
pub mod systemd;
pub mod timer;
pub mod token;
mod uring;
mod waker;
mod worker;

pub use backend::BackendKind;
pub use completion::Completion;
pub use config::{Builder, Config, SpliceMode, SqPoll};
pub use io::Io;
pub use metrics::{Counters, Snapshot};
pub use op::Op;
pub use ratelimit::RateLimit;
pub use registry::Registry;
pub use timer::{TimerHandle, TimerWheel};
pub use token::{OpKind, Token};
pub use uring::probe::kernel_version;
pub use waker::Waker;
pub use worker::{probe_backend, Handle, Runtime, Service};
