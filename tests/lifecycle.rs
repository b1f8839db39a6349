//! Connection lifecycle: idle timeouts, and a panicking callback that takes down only
//! its own connection.

mod support;

use ringcore::{CloseReason, Conn, ConnInfo, Handler};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::client::{connect, echo_check, wait_closed, Ended, Rng};
use support::{for_each_backend, start_server};

const IDLE: Duration = Duration::from_millis(200);

/// Echo that closes connections idle for [`IDLE`].
struct IdleEcho;

impl Handler for IdleEcho {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_idle_timeout(Some(IDLE));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }
}

#[test]
fn idle_connection_times_out_active_one_stays() {
    for_each_backend(|backend| {
        let server = start_server(backend, |b| b, |_: &ConnInfo| IdleEcho);
        // Taken before connecting: the server's idle clock starts at accept, which is
        // earlier than anything the client sees after connect returns.
        let started = Instant::now();
        let mut idle = connect(server.addr);
        let mut active = connect(server.addr);
        server.wait_counters("both connections open", |c| c.open_conns == 2);
        std::thread::scope(|sc| {
            let idle_end = sc.spawn(|| (wait_closed(&mut idle), started.elapsed()));
            // Keep talking for five idle periods, without pause, on the other one.
            let mut rng = Rng::new(3);
            while started.elapsed() < 5 * IDLE {
                let n = rng.range(1, 512);
                echo_check(&mut active, &rng.bytes(n), 512);
            }
            let (ended, after) = idle_end.join().unwrap();
            assert_eq!(ended, Ended::Eof(0), "the idle client sees a clean EOF");
            assert!(
                after >= IDLE,
                "closed after {after:?}, before the {IDLE:?} timeout"
            );
        });
        // The active connection outlived five timeouts and still echoes.
        echo_check(&mut active, b"still here", 64);
        let c = server.wait_counters("the idle timeout counted", |c| c.timeouts >= 1);
        assert_eq!(c.timeouts, 1, "only the idle connection timed out");
        assert_eq!(c.open_conns, 1, "the active connection is still open");
        // Now idle too: it times out as well.
        assert_eq!(wait_closed(&mut active), Ended::Eof(0));
        let c = server.wait_counters("both timeouts counted", |c| {
            c.timeouts == 2 && c.open_conns == 0
        });
        assert_eq!(c.closes, 2);
        server.stop();
    });
}

/// Echo that panics on `b"panic"` in `on_data`, and records close reasons.
struct Panicky {
    reasons: Arc<Mutex<Vec<String>>>,
}

impl Handler for Panicky {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if data.windows(5).any(|w| w == b"panic") {
            panic!("test handler asked to panic");
        }
        conn.send(data);
        data.len()
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.reasons.lock().unwrap().push(format!("{reason:?}"));
    }
}

#[test]
fn panicking_callback_closes_only_its_connection() {
    for_each_backend(|backend| {
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let r = reasons.clone();
        let server = start_server(
            backend,
            |b| b,
            move |_: &ConnInfo| Panicky { reasons: r.clone() },
        );
        let mut others: Vec<_> = (0..4).map(|_| connect(server.addr)).collect();
        let mut rng = Rng::new(4);
        for s in &mut others {
            echo_check(s, &rng.bytes(10_000), 4096);
        }
        let mut bad = connect(server.addr);
        echo_check(&mut bad, b"fine so far", 64);
        bad.write_all(b"please panic now").unwrap();
        let ended = wait_closed(&mut bad);
        assert!(
            matches!(ended, Ended::Eof(0) | Ended::Reset(0)),
            "the panicking connection is closed with nothing echoed: {ended:?}"
        );
        let c = server.wait_counters("the panicked connection released", |c| c.open_conns == 4);
        assert_eq!(c.panics, 1);
        // The others were not touched and still echo, as do new connections.
        for s in &mut others {
            echo_check(s, &rng.bytes(100_000), 4096);
        }
        let mut fresh = connect(server.addr);
        echo_check(&mut fresh, &rng.bytes(100_000), 4096);
        drop((others, fresh));
        let c = server.wait_counters("all connections closed", |c| c.open_conns == 0);
        assert_eq!(c.panics, 1, "exactly one callback panicked");
        let reasons = reasons.lock().unwrap();
        assert_eq!(reasons.len(), 6);
        assert_eq!(
            reasons.iter().filter(|r| *r == "Panic").count(),
            1,
            "{reasons:?}"
        );
        drop(reasons);
        server.stop();
    });
}
