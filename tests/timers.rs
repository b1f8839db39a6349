//! Timers of closed connections: a connection's idle timeout and user timer leave the
//! worker's timer set when it closes (issue 8, defect 12), on both backends.

mod support;

use ringcore::{Conn, ConnInfo, Handler};
use std::time::Duration;
use support::client::{connect, echo_check};
use support::{for_each_backend, start_server};

/// Long enough never to fire during the test: only cancellation can remove them.
const LONG: Duration = Duration::from_secs(75);

/// Echo with a long idle timeout and a long user timer.
struct TimedEcho;

impl Handler for TimedEcho {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_idle_timeout(Some(LONG));
        let at = conn.now() + LONG;
        conn.set_timer(Some(at));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }
}

#[test]
fn closed_connections_leave_no_timers() {
    for_each_backend(|backend| {
        let server = start_server(backend, |b| b, |_: &ConnInfo| TimedEcho);
        for round in 0..4 {
            let mut clients: Vec<_> = (0..50).map(|_| connect(server.addr)).collect();
            for c in &mut clients {
                echo_check(c, b"ping", 64);
            }
            let c = server.wait_counters("50 connections open", |c| c.open_conns == 50);
            assert!(
                c.timers_pending >= 50,
                "round {round}: open connections hold timers ({c:?})"
            );
            drop(clients);
            server.wait_counters("every connection closed", |c| c.open_conns == 0);
            let c = server.wait_counters("the closed connections' timers to go", |c| {
                c.timers_pending == 0
            });
            assert_eq!(c.closes, 50 * (round + 1));
        }
        server.stop();
    });
}

/// Holds its outbound connection open, with no timer of its own.
struct Holder;

impl Handler for Holder {
    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

/// A finished outbound connect removes its timeout from the timer set (issue 8,
/// cancellable timers): 20 client connections held open leave `timers_pending` at its
/// baseline, 0, instead of 20 entries that would stay for the 10 s connect timeout.
#[test]
fn finished_outbound_connects_leave_no_timers() {
    use ringcore::{Connect, ConnectOptions};
    for_each_backend(|backend| {
        let server = start_server(backend, |b| b, |_: &ConnInfo| Holder);
        let rt = support::base_builder(backend)
            .drain_timeout(Duration::from_millis(200))
            .build()
            .expect("client runtime");
        let handle = rt.handle();
        let addr = server.addr;
        let client = std::thread::spawn(move || {
            rt.connect(addr, 20, ConnectOptions::default(), |_: &ConnInfo| Holder)
        });
        let mut c = handle.metrics().total;
        support::wait_until("20 outbound connections", || {
            c = handle.metrics().total;
            c.connects == 20
        });
        assert_eq!(c.timers_pending, 0, "finished connects hold timers: {c:?}");
        handle.shutdown();
        client.join().unwrap().expect("client runtime ran");
        server.stop();
    });
}
