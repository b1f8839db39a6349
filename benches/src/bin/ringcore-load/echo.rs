//! `echo` mode: fixed-size messages; every byte coming back is checked against what
//! was sent.

use crate::client::{Parsed, Protocol};
use crate::stats::WorkerStats;
use std::rc::Rc;

/// The echo protocol: a response is `size` bytes equal to the request.
pub struct Echo {
    msg: Rc<[u8]>,
    /// Bytes of the current response already received.
    pos: usize,
}

/// A message of `size` bytes with a recognisable pattern.
pub fn message(size: usize) -> Rc<[u8]> {
    (0..size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

impl Echo {
    pub fn new(msg: Rc<[u8]>) -> Self {
        Echo { msg, pos: 0 }
    }
}

impl Protocol for Echo {
    fn request(&self) -> &[u8] {
        &self.msg
    }

    fn parse(&mut self, data: &[u8], _stats: &mut WorkerStats) -> Parsed {
        let size = self.msg.len();
        let mut off = 0;
        let mut responses = 0;
        while off < data.len() {
            let n = (size - self.pos).min(data.len() - off);
            if data[off..off + n] != self.msg[self.pos..self.pos + n] {
                return Parsed {
                    responses,
                    consumed: data.len(),
                    error: true,
                };
            }
            off += n;
            self.pos += n;
            if self.pos == size {
                self.pos = 0;
                responses += 1;
            }
        }
        Parsed {
            responses,
            consumed: data.len(),
            error: false,
        }
    }
}
