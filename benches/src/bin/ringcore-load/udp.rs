//! UDP mode: each generator worker binds its own socket and keeps `depth` datagrams of
//! `size` bytes in flight to the target (closed loop); every reply must come back with
//! the same length and a sequence number we sent. A datagram whose reply has not come
//! back after [`LOSS_TIMEOUT`] is counted lost and replaced, so losses never stall the
//! window while other replies arrive.

use crate::stats::{worker_stats, Shared, WorkerStats, DONE, MEASURE};
use ringcore::{DatagramHandler, Datagrams};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A datagram whose reply is this late is counted lost.
pub const LOSS_TIMEOUT: Duration = Duration::from_millis(200);

pub struct UdpLoad {
    target: SocketAddr,
    depth: usize,
    msg: Vec<u8>,
    next_seq: u64,
    /// In send order: (sequence, sent at, sent while measuring).
    outstanding: VecDeque<(u64, Instant, bool)>,
    shared: Arc<Shared>,
    stats: Rc<RefCell<WorkerStats>>,
}

impl UdpLoad {
    pub fn new(target: SocketAddr, size: usize, depth: usize, shared: &Arc<Shared>) -> UdpLoad {
        UdpLoad {
            target,
            depth: depth.max(1),
            msg: (0..size.max(8)).map(|i| (i % 251) as u8).collect(),
            next_seq: 0,
            outstanding: VecDeque::new(),
            shared: shared.clone(),
            stats: worker_stats(shared),
        }
    }

    fn send_one(&mut self, ctx: &mut Datagrams<'_>, phase: u8) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.msg[..8].copy_from_slice(&seq.to_le_bytes());
        if ctx.send_to(self.target, &self.msg) {
            let measured = phase == MEASURE;
            if measured {
                self.stats.borrow_mut().sent += 1;
            }
            self.outstanding.push_back((seq, Instant::now(), measured));
        }
    }

    fn refill(&mut self, ctx: &mut Datagrams<'_>) {
        let phase = self.shared.phase();
        if phase == DONE || ctx.is_draining() {
            return;
        }
        while self.outstanding.len() < self.depth {
            self.send_one(ctx, phase);
        }
    }
}

impl DatagramHandler for UdpLoad {
    fn on_open(&mut self, ctx: &mut Datagrams<'_>) {
        self.refill(ctx);
    }

    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, _peer: SocketAddr, bytes: &[u8]) {
        let now = Instant::now();
        let phase = self.shared.phase();
        let seq = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        let at = seq.and_then(|s| self.outstanding.iter().position(|&(q, _, _)| q == s));
        {
            let mut st = self.stats.borrow_mut();
            match at {
                Some(i) if bytes.len() == self.msg.len() => {
                    let (_, sent, _) = self.outstanding.remove(i).unwrap_or((0, now, false));
                    st.bytes_in += if phase == MEASURE {
                        bytes.len() as u64
                    } else {
                        0
                    };
                    st.record(now, sent, sent, phase);
                }
                // A reply to a datagram already counted lost (it came late): ignored.
                None if seq.is_some_and(|s| s < self.next_seq) && bytes.len() == self.msg.len() => {
                }
                _ => {
                    if phase == MEASURE {
                        st.protocol_errors += 1;
                    }
                }
            }
            // Replies that are this late are lost (replaced below).
            while let Some(&(_, sent, measured)) = self.outstanding.front() {
                if now.saturating_duration_since(sent) < LOSS_TIMEOUT {
                    break;
                }
                self.outstanding.pop_front();
                if measured {
                    st.lost += 1;
                }
            }
        }
        self.refill(ctx);
    }
}
