//! Runtime edges of issue 8: a shutdown requested before `run` (defect 7), and a
//! response cut by the drain-deadline abort is counted (defect 18). Both backends.

mod support;

use ringcore::{Conn, ConnInfo, Handler, Serve};
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;
use support::client::connect;
use support::{base_builder, for_each_backend, start_server, DEADLINE};

#[test]
fn shutdown_before_run_returns_promptly() {
    for_each_backend(|backend| {
        let rt = base_builder(backend).build().expect("runtime");
        rt.handle().shutdown();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let r = rt.serve("127.0.0.1:0", support::echo_factory);
            let _ = tx.send(r.map_err(|e| e.to_string()));
        });
        // No connection and no signal arrives: only the early shutdown can end `serve`.
        match rx.recv_timeout(DEADLINE) {
            Ok(r) => r.expect("serve returns Ok"),
            Err(_) => panic!("serve on {backend} did not return after an early shutdown"),
        }
        t.join().unwrap();
    });
}

/// Answers any input with 64 MiB, more than socket buffers hold.
struct Flood;

impl Handler for Flood {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send_owned(vec![7u8; 64 << 20]);
        data.len()
    }
}

#[test]
fn drain_abort_with_queued_output_is_counted() {
    for_each_backend(|backend| {
        let server = start_server(
            backend,
            |b| b.drain_timeout(Duration::from_millis(200)),
            |_: &ConnInfo| Flood,
        );
        // Never reads: the response stays queued until the drain deadline cuts it.
        let mut c = connect(server.addr);
        c.write_all(b"go").unwrap();
        server.wait_counters("the response to start", |c| c.bytes_out > 0);
        let idle = connect(server.addr);
        server.wait_counters("both connections open", |c| c.open_conns == 2);
        let c = server.stop();
        assert_eq!(c.drain_aborted, 1, "one response was cut ({c:?})");
        assert_eq!(c.open_conns, 0);
        drop(idle);
    });
}

mod leak_on_fatal {
    //! Defect 8: memory the kernel may still write must not be freed when a worker dies
    //! (service start fails or the service panics) with ops in flight.

    use super::support::{base_builder, for_each_backend};
    use ringcore::runtime::{Completion, Io, Op, OpKind, Service, Token};
    use ringcore::BackendKind;
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    const READ: Token = Token::new(1, 1, OpKind::Recv);
    const NOP: Token = Token::new(2, 1, OpKind::Cancel);

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Fail {
        /// `start` arms the read, then fails.
        Start,
        /// `start` arms the read and a no-op; the no-op's completion panics.
        Panic,
        /// No op at all; ends cleanly on shutdown.
        Never,
    }

    /// A service owning a buffer that an armed read on an empty pipe points into.
    struct Reader {
        fail: Fail,
        drops: Arc<AtomicUsize>,
        buf: Box<[u8; 64]>,
        pipe: [RawFd; 2],
    }

    impl Drop for Reader {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Service for Reader {
        fn start(&mut self, io: &mut Io) -> io::Result<()> {
            if self.fail == Fail::Never {
                return Ok(());
            }
            // SAFETY: plain pipe creation; the result is checked.
            let r = unsafe { libc::pipe2(self.pipe.as_mut_ptr(), libc::O_NONBLOCK) };
            assert_eq!(r, 0, "pipe2");
            let read = Op::Read {
                fd: self.pipe[0],
                buf: self.buf.as_mut_ptr(),
                len: 64,
            };
            // SAFETY: `buf` lives in the service, which the runtime must not free while
            // the read may still be in flight (what this test checks).
            unsafe { io.submit(READ, read)? };
            if self.fail == Fail::Start {
                return Err(io::Error::other("start failed after arming a read"));
            }
            // SAFETY: a no-op references no memory.
            unsafe { io.submit(NOP, Op::Nop) }
        }
        fn complete(&mut self, _io: &mut Io, c: Completion) {
            if c.token == NOP {
                panic!("a service bug, with a read in flight (expected by the test)");
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
            self.fail == Fail::Never
        }
    }

    fn run(backend: BackendKind, fail: Fail) -> (io::Result<()>, usize) {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = base_builder(backend).build().expect("runtime");
        if fail == Fail::Never {
            rt.handle().shutdown();
        }
        let d = drops.clone();
        let r = rt.run(move |_, _| {
            Ok(Reader {
                fail,
                drops: d.clone(),
                buf: Box::new([0; 64]),
                pipe: [-1, -1],
            })
        });
        (r, drops.load(Ordering::SeqCst))
    }

    #[test]
    fn service_with_ops_in_flight_is_leaked_not_freed() {
        for_each_backend(|backend| {
            // io_uring: the read is in the kernel, the service must be leaked. epoll: a
            // parked op is only a pointer the poller never follows once dropped, so the
            // service is freed.
            let expected = match backend {
                BackendKind::Uring => 0,
                _ => 1,
            };
            let (r, drops) = run(backend, Fail::Panic);
            assert!(r.is_err(), "a panicking service fails run");
            assert_eq!(
                drops, expected,
                "{backend}: service panicked with a read in flight"
            );

            let (r, drops) = run(backend, Fail::Start);
            assert!(r.is_err(), "a failing start fails run");
            assert_eq!(
                drops, expected,
                "{backend}: start failed with a read queued"
            );

            // Nothing in flight: the service is dropped as usual.
            let (r, drops) = run(backend, Fail::Never);
            r.expect("clean run");
            assert_eq!(drops, 1, "{backend}: a quiet service is dropped once");
        });
    }
}
