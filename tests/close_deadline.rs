//! The close (linger) deadline (issue 8, defect 9): a graceful close towards a peer
//! that never reads is aborted when the deadline passes, instead of keeping its slot
//! and its queue until shutdown; a reader that keeps up still gets everything.

mod support;

use ringcore::{CloseReason, Conn, ConnInfo, Handler};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{connect, connect_small_rcvbuf, Rng};
use support::{for_each_backend, start_server};

/// On its first bytes: queue `body`, close gracefully with a short close deadline.
struct SendAndClose {
    body: Arc<Vec<u8>>,
    deadline: Duration,
    reasons: Arc<Mutex<Vec<String>>>,
}

impl Handler for SendAndClose {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.set_close_timeout(Some(self.deadline));
        conn.send_owned(self.body.to_vec());
        conn.close();
        data.len()
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.reasons.lock().unwrap().push(format!("{reason:?}"));
    }
}

fn start(
    backend: ringcore::BackendKind,
    body: &Arc<Vec<u8>>,
    deadline: Duration,
) -> (support::TestServer, Arc<Mutex<Vec<String>>>) {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let (b, r) = (body.clone(), reasons.clone());
    let server = start_server(
        backend,
        |b| b,
        move |_: &ConnInfo| SendAndClose {
            body: b.clone(),
            deadline,
            reasons: r.clone(),
        },
    );
    (server, reasons)
}

#[test]
fn close_towards_a_peer_that_never_reads_is_aborted_at_the_deadline() {
    for_each_backend(|backend| {
        let body = Arc::new(Rng::new(5).bytes(8 << 20));
        let (server, reasons) = start(backend, &body, Duration::from_millis(200));
        let mut s = connect_small_rcvbuf(server.addr, 4096);
        s.write_all(b"go").unwrap();
        // The client never reads: only the deadline can end the connection.
        server.wait_counters("the stuck close to be aborted", |c| c.open_conns == 0);
        support::wait_until("on_close", || reasons.lock().unwrap().len() == 1);
        let r = reasons.lock().unwrap().clone();
        assert!(
            r[0].contains("TimedOut") && r[0].contains("close deadline"),
            "on_close reason: {r:?}"
        );
        drop(s);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn close_deadline_spares_a_reader_that_keeps_up() {
    for_each_backend(|backend| {
        let body = Arc::new(Rng::new(6).bytes(4 << 20));
        let (server, reasons) = start(backend, &body, Duration::from_secs(20));
        let mut s = connect(server.addr);
        s.write_all(b"go").unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert!(got == *body, "every byte before the close");
        server.wait_counters("the connection to close", |c| c.open_conns == 0);
        support::wait_until("on_close", || reasons.lock().unwrap().len() == 1);
        let r = reasons.lock().unwrap().clone();
        assert_eq!(r, vec!["Local".to_string()]);
        server.stop();
    });
}
