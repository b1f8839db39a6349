//! The submit path: no-op ops pushed through one worker's loop (push -> one enter per
//! turn -> reap -> dispatch to the service), on both backends. Reports ops per second
//! with `IN_FLIGHT` ops kept in flight, so every turn submits and reaps a batch.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringcore::runtime::{BackendKind, Completion, Io, Op, OpKind, Runtime, Service, Token};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OPS: u64 = 200_000;
const IN_FLIGHT: u64 = 256;

struct Nops {
    submitted: u64,
    done: u64,
    started: Option<Instant>,
    out: Arc<Mutex<Duration>>,
}

impl Nops {
    fn push(&mut self, io: &mut Io) {
        // SAFETY: a no-op references no memory.
        unsafe { io.submit(Token::new(0, 0, OpKind::Nop), Op::Nop) }.expect("submit");
        self.submitted += 1;
    }
}

impl Service for Nops {
    fn start(&mut self, io: &mut Io) -> std::io::Result<()> {
        self.started = Some(Instant::now());
        for _ in 0..IN_FLIGHT {
            self.push(io);
        }
        Ok(())
    }
    fn complete(&mut self, io: &mut Io, _c: Completion) {
        self.done += 1;
        if self.submitted < OPS {
            self.push(io);
        }
        if self.done == OPS {
            if let Some(t) = self.started {
                *self.out.lock().unwrap() = t.elapsed();
            }
        }
    }
    fn expire(&mut self, _io: &mut Io) {}
    fn flush(&mut self, _io: &mut Io) {}
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    fn drain(&mut self, _io: &mut Io) {}
    fn abort(&mut self, _io: &mut Io) {}
    fn is_done(&self) -> bool {
        self.done == self.submitted
    }
    fn wants_exit(&self) -> bool {
        self.done >= OPS
    }
}

/// Runs `OPS` no-ops on one worker and returns the time the op loop took.
fn run(backend: BackendKind) -> Duration {
    let rt = Runtime::builder()
        .workers(1)
        .backend(backend)
        .handle_signals(false)
        .raise_nofile(false)
        .build()
        .expect("runtime");
    let out = Arc::new(Mutex::new(Duration::ZERO));
    let o = out.clone();
    rt.run(move |_, _| {
        Ok(Nops {
            submitted: 0,
            done: 0,
            started: None,
            out: o.clone(),
        })
    })
    .expect("run");
    let d = *out.lock().unwrap();
    d
}

fn submit(c: &mut Criterion) {
    let mut g = c.benchmark_group("submit");
    g.throughput(Throughput::Elements(OPS));
    g.sample_size(10);
    for backend in [BackendKind::Uring, BackendKind::Epoll] {
        g.bench_function(format!("nop x{OPS} ({backend})"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(backend)).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, submit);
criterion_main!(benches);
