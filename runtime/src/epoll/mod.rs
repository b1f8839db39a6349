//! The epoll backend (edge-triggered). Executes the same [`Op`]s as io_uring and
//! produces the same [`Completion`]s. (Being written: see issue 3.)

use crate::completion::Completion;
use crate::config::Config;
use crate::metrics::Counters;
use crate::op::Op;
use crate::token::Token;
use std::io;
use std::time::Duration;

pub(crate) struct Poller {
    scratch: Vec<u8>,
}

impl Poller {
    pub(crate) fn new(cfg: &Config) -> io::Result<Poller> {
        let _ = cfg;
        Err(io::Error::new(io::ErrorKind::Unsupported, "epoll backend not built yet"))
    }

    /// # Safety
    /// Pointers in `op` stay valid until its final completion.
    pub(crate) unsafe fn push(&mut self, _token: Token, _op: Op, _link: bool, _c: &mut Counters) -> io::Result<()> {
        unimplemented!()
    }

    pub(crate) fn wait(&mut self, _timeout: Option<Duration>, _c: &mut Counters) -> io::Result<()> {
        unimplemented!()
    }

    pub(crate) fn next(&mut self, _c: &mut Counters) -> Option<Completion> {
        unimplemented!()
    }

    pub(crate) fn has_ready(&self) -> bool {
        false
    }

    pub(crate) fn buffer(&self, _bid: u16, len: usize) -> &[u8] {
        &self.scratch[..len]
    }

    pub(crate) fn recycle(&mut self, _bid: u16) {}

    pub(crate) fn buffer_size(&self) -> usize {
        self.scratch.len()
    }
}
