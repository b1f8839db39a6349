//! A byte-stream layer between the runtime and a wrapped handler (TLS is the one user).
//!
//! A wrapping handler (for instance [`tls`](crate::tls)'s) calls its inner handler
//! with a [`Conn`](crate::Conn) whose core carries a [`Layer`]: while it is installed,
//! the output calls of that `Conn` (`send*`, `send_file`, `close`, `shutdown_write`)
//! land in the layer as plaintext instead of the socket's write queue, and the queries
//! (`queued_bytes`, `is_backed_up`, `unconsumed`) count the layer's bytes too. After
//! the inner callback returns, the wrapper takes the layer back and turns what it holds
//! into output of its own (encrypted records) on the real connection. Everything else
//! (timers, pause/resume, offload, addresses) goes straight to the real connection.
//!
//! ```text
//! runtime --ciphertext--> wrapper.on_data --plaintext--> inner.on_data
//! inner: conn.send(p) --> Layer.out (plaintext) --> wrapper: encrypt --> write queue
//! ```

use crate::reason::CloseReason;
use std::collections::VecDeque;
use std::fs::File;

/// One piece of plaintext output, in order.
pub(crate) enum Plain {
    /// Bytes.
    Bytes(Vec<u8>),
    /// A file region: read and encrypted in bounded chunks by the wrapper. `file` is
    /// `None` while a read of it runs off the worker. (Read only by the TLS wrapper:
    /// unread without the `tls` feature.)
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    File {
        file: Option<File>,
        offset: u64,
        remaining: u64,
    },
}

/// The inner handler's view of its output while a layer is installed.
#[derive(Default)]
pub(crate) struct Layer {
    /// Output not yet taken by the wrapper, oldest first.
    pub(crate) out: VecDeque<Plain>,
    /// Bytes in `out` (file regions counted by what is left of them).
    pub(crate) out_len: usize,
    /// The inner handler asked to close (with this reason) once its output is out.
    pub(crate) close: Option<CloseReason>,
    /// The inner handler asked to shut down its sending side.
    pub(crate) shutdown: bool,
    /// Input the inner handler left unconsumed (kept by the wrapper).
    pub(crate) unconsumed: usize,
    /// What the wrapper tells the inner handler about the session (TLS only).
    #[cfg(feature = "tls")]
    pub(crate) tls: crate::tls::TlsInfo,
}

impl Layer {
    /// No more output is accepted from the inner handler.
    pub(crate) fn write_closed(&self) -> bool {
        self.close.is_some() || self.shutdown
    }

    /// Appends bytes, coalescing into the last piece when it is bytes.
    pub(crate) fn push_bytes(&mut self, data: &[u8]) {
        self.out_len += data.len();
        if let Some(Plain::Bytes(last)) = self.out.back_mut() {
            if last.len() < 64 * 1024 {
                last.extend_from_slice(data);
                return;
            }
        }
        self.out.push_back(Plain::Bytes(data.to_vec()));
    }

    /// Appends an owned buffer.
    pub(crate) fn push_owned(&mut self, data: Vec<u8>) {
        self.out_len += data.len();
        self.out.push_back(Plain::Bytes(data));
    }

    /// Lets `f` append to the last bytes piece (or a new one).
    pub(crate) fn push_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        if !matches!(self.out.back(), Some(Plain::Bytes(_))) {
            self.out.push_back(Plain::Bytes(Vec::new()));
        }
        let Some(Plain::Bytes(last)) = self.out.back_mut() else {
            unreachable!("a bytes piece was just pushed");
        };
        let before = last.len();
        let r = f(last);
        // `f` may only append; whatever it did, count the change it made.
        self.out_len = self.out_len - before + last.len();
        r
    }

    /// Appends a file region.
    pub(crate) fn push_file(&mut self, file: File, offset: u64, len: u64) {
        self.out_len += len as usize;
        self.out.push_back(Plain::File {
            file: Some(file),
            offset,
            remaining: len,
        });
    }
}

impl crate::handler::Conn<'_> {
    /// The inner handler asked to close while the layer still holds output for it
    /// (a file read and encrypted in chunks needs the peer to read): start the close
    /// (linger) deadline now, as a plaintext close does, so a peer that stopped
    /// reading cannot hold the connection open. The real close, when it comes, keeps
    /// this deadline. Idempotent.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn arm_layer_close_deadline(&mut self) {
        use crate::conn::{CANCELLED, LAYER_CLOSE};
        let core = &mut *self.core;
        if core.has(CANCELLED) || core.close_timer.is_some() || core.linger_ms == 0 {
            return;
        }
        let at = self.ctx.now + std::time::Duration::from_millis(core.linger_ms as u64);
        let key = core.token.with_kind(ringcore_runtime::OpKind::Close).raw();
        core.close_timer = Some(self.ctx.timers.insert(at, key));
        core.set(LAYER_CLOSE);
    }
}
