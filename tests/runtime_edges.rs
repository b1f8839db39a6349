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
