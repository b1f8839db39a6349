//! Backend parity: the same client script gives the same bytes and the same callback
//! sequence on io_uring and on epoll.
//!
//! A recording handler appends every callback (`on_open`, `on_data` with the bytes it
//! consumed, `on_sent`, `on_eof`, `on_timeout`, `on_close` with the reason's kind) to a
//! shared log, keyed by the client's port. Traces are compared after normalising what
//! legitimately varies with timing and chunking:
//!
//! * consecutive `on_data` are merged into their byte total (how the kernel splits a
//!   stream into reads is not part of the contract);
//! * `on_sent` is removed from the compared trace (how many sends a stream takes
//!   varies); its order constraints are checked separately instead.
//!
//! Each normalised trace must equal the expected trace written out in the test, and
//! (when both backends run) the backends' results must equal each other. With
//! `RINGCORE_BACKEND` set, `for_each_backend` runs only that backend, which is then
//! checked against the expected traces alone.

mod support;

use ringcore::{BackendKind, CloseReason, Conn, ConnInfo, Handler};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::client::{connect, read_expect, read_to_eof, shutdown_write, wait_closed, Ended, Rng};
use support::{for_each_backend, start_server, wait_until};

/// One callback, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Open,
    /// Bytes consumed by one `on_data` (calls consuming nothing are not recorded).
    Data(usize),
    Sent,
    Eof,
    Timeout,
    /// The close reason's variant name (`Local`, `IdleTimeout`, `Error`, ...).
    Close(String),
}

/// Callbacks of every connection, keyed by the peer (client) port.
type Log = Arc<Mutex<Vec<(u16, Ev)>>>;

/// What the recording handler does besides recording.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Echo; close after the peer's EOF (the default `on_eof` behaviour).
    Echo,
    /// Echo, with this idle timeout set in `on_open`; default `on_timeout` behaviour.
    Idle(Duration),
    /// Read one line `<n>\n`, answer with `n` bytes of [`response`] and close.
    Respond,
}

struct Recorder {
    port: u16,
    mode: Mode,
    log: Log,
}

impl Recorder {
    fn rec(&self, ev: Ev) {
        self.log.lock().unwrap().push((self.port, ev));
    }
}

/// The deterministic response body of `n` bytes for [`Mode::Respond`].
fn response(n: usize) -> Vec<u8> {
    Rng::new(n as u64).bytes(n)
}

impl Handler for Recorder {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.rec(Ev::Open);
        if let Mode::Idle(d) = self.mode {
            conn.set_idle_timeout(Some(d));
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        match self.mode {
            Mode::Echo | Mode::Idle(_) => {
                conn.send(data);
                self.rec(Ev::Data(data.len()));
                data.len()
            }
            Mode::Respond => {
                // Leftovers come back with the next bytes until the line is complete.
                let Some(end) = data.iter().position(|&b| b == b'\n') else {
                    return 0;
                };
                let n: usize = std::str::from_utf8(&data[..end])
                    .expect("utf-8 request")
                    .parse()
                    .expect("request is a length");
                let body = response(n);
                // Several sends of one turn: they leave in order, then the close.
                let (a, b) = body.split_at(n / 3);
                conn.send(a);
                conn.send_owned(b.to_vec());
                conn.close();
                self.rec(Ev::Data(end + 1));
                end + 1
            }
        }
    }

    fn on_sent(&mut self, _conn: &mut Conn<'_>) {
        self.rec(Ev::Sent);
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.rec(Ev::Eof);
        conn.close();
    }

    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        self.rec(Ev::Timeout);
        conn.close_with(CloseReason::IdleTimeout);
    }

    fn on_close(&mut self, reason: CloseReason) {
        let dbg = format!("{reason:?}");
        let kind = dbg.split(['(', ' ']).next().unwrap_or_default().to_string();
        self.rec(Ev::Close(kind));
    }
}

/// Starts a recording server in `mode` on `backend`.
fn start(backend: BackendKind, mode: Mode, log: &Log) -> support::TestServer {
    let log = log.clone();
    start_server(
        backend,
        |b| b,
        move |info: &ConnInfo| Recorder {
            port: info.peer_addr().expect("peer address").port(),
            mode,
            log: log.clone(),
        },
    )
}

/// The raw trace of the connection from client port `port`, once `on_close` is in it.
fn raw_trace(log: &Log, port: u16) -> Vec<Ev> {
    let mut out = Vec::new();
    wait_until(&format!("on_close for the client on port {port}"), || {
        out = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, e)| e.clone())
            .collect();
        out.iter().any(|e| matches!(e, Ev::Close(_)))
    });
    out
}

/// Merges consecutive `Data` and drops `Sent`.
fn normalize(raw: &[Ev]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for e in raw {
        match (e, out.last_mut()) {
            (Ev::Sent, _) => {}
            (Ev::Data(n), Some(Ev::Data(total))) => *total += n,
            _ => out.push(e.clone()),
        }
    }
    out
}

/// The order guarantees every trace has, whatever the backend and the chunking:
/// `on_open` first, `on_close` last and exactly once, `on_eof` and `on_timeout` at most
/// once and before `on_close`, `on_sent` never before the first `on_data` of an echo.
fn check_order(raw: &[Ev], what: &str) {
    assert_eq!(
        raw.first(),
        Some(&Ev::Open),
        "{what}: on_open first: {raw:?}"
    );
    assert!(
        matches!(raw.last(), Some(Ev::Close(_))),
        "{what}: on_close last: {raw:?}"
    );
    let count = |f: fn(&Ev) -> bool| raw.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| *e == Ev::Open), 1, "{what}: one on_open: {raw:?}");
    assert_eq!(
        count(|e| matches!(e, Ev::Close(_))),
        1,
        "{what}: one on_close: {raw:?}"
    );
    assert!(
        count(|e| *e == Ev::Eof) <= 1,
        "{what}: on_eof once: {raw:?}"
    );
    assert!(
        count(|e| *e == Ev::Timeout) <= 1,
        "{what}: on_timeout once: {raw:?}"
    );
    if let Some(first_sent) = raw.iter().position(|e| *e == Ev::Sent) {
        let first_data = raw.iter().position(|e| matches!(e, Ev::Data(_)));
        assert!(
            first_data.is_some_and(|d| d < first_sent),
            "{what}: on_sent only after bytes were queued: {raw:?}"
        );
    }
}

/// Index of the last `Data` in `raw`.
fn last_data(raw: &[Ev]) -> Option<usize> {
    raw.iter().rposition(|e| matches!(e, Ev::Data(_)))
}

/// What one backend produced for a scenario: per script (by index), the normalised
/// trace and what the client observed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    traces: BTreeMap<usize, Vec<Ev>>,
    client: BTreeMap<usize, String>,
}

/// Checks every backend's outcome against `expected`, and the backends against each
/// other.
fn assert_parity(results: &[(BackendKind, Outcome)], expected: &Outcome) {
    assert!(!results.is_empty(), "no backend ran");
    for (b, o) in results {
        assert_eq!(
            o, expected,
            "backend {b}: outcome differs from the expected one"
        );
    }
    for pair in results.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].1,
            "{} and {} differ",
            pair[0].0, pair[1].0
        );
    }
    eprintln!(
        "parity checked on {:?}",
        results.iter().map(|r| r.0.name()).collect::<Vec<_>>()
    );
}

fn local_port(s: &TcpStream) -> u16 {
    s.local_addr().expect("local address").port()
}

/// Runs `f` on every backend and collects what it returns.
fn on_backends(f: impl Fn(BackendKind) -> Outcome) -> Vec<(BackendKind, Outcome)> {
    let results = Mutex::new(Vec::new());
    for_each_backend(|b| {
        let o = f(b);
        results.lock().unwrap().push((b, o));
    });
    results.into_inner().unwrap()
}

/// The echo script of client `i`: the piece sizes it sends (deterministic).
fn echo_pieces(i: usize) -> Vec<usize> {
    let mut rng = Rng::new(100 + i as u64);
    (0..8 + 4 * i).map(|_| rng.range(1, 6000)).collect()
}

const ECHO_CLIENTS: usize = 4;

#[test]
fn echo_half_close_trace_is_identical() {
    let results = on_backends(|backend| {
        let log: Log = Arc::default();
        let server = start(backend, Mode::Echo, &log);
        // Concurrent clients, each: connect, send in pieces (reading the echo back after
        // every other piece), half-close, read to EOF.
        let ports: Vec<(u16, String)> = std::thread::scope(|sc| {
            let clients: Vec<_> = (0..ECHO_CLIENTS)
                .map(|i| {
                    let addr = server.addr;
                    sc.spawn(move || {
                        let mut s = connect(addr);
                        let mut rng = Rng::new(200 + i as u64);
                        let mut unread = Vec::new();
                        let mut total = 0;
                        for (k, n) in echo_pieces(i).into_iter().enumerate() {
                            let piece = rng.bytes(n);
                            s.write_all(&piece).expect("write a piece");
                            unread.extend_from_slice(&piece);
                            total += n;
                            if k % 2 == 1 {
                                read_expect(&mut s, &unread, 1500);
                                unread.clear();
                            }
                        }
                        read_expect(&mut s, &unread, 1500);
                        shutdown_write(&s);
                        let end = match read_to_eof(&mut s) {
                            Ok(rest) => format!("eof after {total} echoed, {} more", rest.len()),
                            Err((rest, e)) => format!("error {e} after {}", rest.len()),
                        };
                        (local_port(&s), end)
                    })
                })
                .collect();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut out = Outcome {
            traces: BTreeMap::new(),
            client: BTreeMap::new(),
        };
        for (i, (port, end)) in ports.into_iter().enumerate() {
            let raw = trace_checked(&log, port, &format!("{backend} echo client {i}"));
            // The last echo was read before the half-close, so its send drained first.
            let eof = raw.iter().position(|e| *e == Ev::Eof).expect("on_eof");
            let data = last_data(&raw).expect("on_data");
            assert!(
                raw[data..eof].contains(&Ev::Sent),
                "{backend} echo client {i}: on_sent between the last on_data and \
                 on_eof: {raw:?}"
            );
            out.traces.insert(i, normalize(&raw));
            out.client.insert(i, end);
        }
        let c = server.stop();
        assert_eq!(c.closes, ECHO_CLIENTS as u64);
        assert_eq!(c.panics, 0);
        out
    });
    let expected = Outcome {
        traces: (0..ECHO_CLIENTS)
            .map(|i| {
                let total = echo_pieces(i).iter().sum();
                (
                    i,
                    vec![
                        Ev::Open,
                        Ev::Data(total),
                        Ev::Eof,
                        Ev::Close("Local".into()),
                    ],
                )
            })
            .collect(),
        client: (0..ECHO_CLIENTS)
            .map(|i| {
                let total: usize = echo_pieces(i).iter().sum();
                (i, format!("eof after {total} echoed, 0 more"))
            })
            .collect(),
    };
    assert_parity(&results, &expected);
}

/// The raw trace of `port` with the order guarantees checked.
fn trace_checked(log: &Log, port: u16, what: &str) -> Vec<Ev> {
    let raw = raw_trace(log, port);
    check_order(&raw, what);
    raw
}

#[test]
fn echo_half_close_with_echo_in_flight_trace_is_identical() {
    // The client half-closes right after writing, without waiting: the EOF arrives
    // while echo is still queued or in flight. Everything is still echoed, then EOF.
    const N: usize = 300_000;
    let results = on_backends(|backend| {
        let log: Log = Arc::default();
        let server = start(backend, Mode::Echo, &log);
        let payload = Rng::new(7).bytes(N);
        let mut s = connect(server.addr);
        let mut reader = s.try_clone().expect("clone");
        let (got, end) = std::thread::scope(|sc| {
            let r = sc.spawn(move || read_to_eof(&mut reader));
            s.write_all(&payload).expect("write the payload");
            shutdown_write(&s);
            match r.join().unwrap() {
                Ok(got) => (got, "eof".to_string()),
                Err((got, e)) => (got, format!("error {e}")),
            }
        });
        assert!(
            got == payload,
            "{backend}: echo differs ({} bytes)",
            got.len()
        );
        let raw = trace_checked(&log, local_port(&s), &format!("{backend} in-flight"));
        let out = Outcome {
            traces: [(0, normalize(&raw))].into(),
            client: [(0, format!("{end} after {}", got.len()))].into(),
        };
        server.stop();
        out
    });
    let expected = Outcome {
        traces: [(
            0,
            vec![Ev::Open, Ev::Data(N), Ev::Eof, Ev::Close("Local".into())],
        )]
        .into(),
        client: [(0, format!("eof after {N}"))].into(),
    };
    assert_parity(&results, &expected);
}

const IDLE: Duration = Duration::from_millis(250);

#[test]
fn idle_timeout_trace_is_identical() {
    let results = on_backends(|backend| {
        let log: Log = Arc::default();
        let server = start(backend, Mode::Idle(IDLE), &log);
        // Client 0 talks once then goes quiet; client 1 never says anything. Times are
        // taken before the action that last re-arms the server's timer (connect, write):
        // the server's clock for that activity is later, so the timeout cannot be seen
        // to come early, except for the deadline's millisecond rounding.
        let started = Instant::now();
        let mut talker = connect(server.addr);
        let mut silent = connect(server.addr);
        let (talker_end, silent_end) = std::thread::scope(|sc| {
            let s = sc.spawn(|| (wait_closed(&mut silent), started.elapsed()));
            let quiet_since = Instant::now();
            talker.write_all(b"ping").expect("write");
            read_expect(&mut talker, b"ping", 64);
            let t = (wait_closed(&mut talker), quiet_since.elapsed());
            (t, s.join().unwrap())
        });
        for (what, after) in [("talker", talker_end.1), ("silent", silent_end.1)] {
            assert!(
                after + Duration::from_millis(1) >= IDLE,
                "{backend} {what}: closed after {after:?}, before the {IDLE:?} timeout"
            );
        }
        let mut out = Outcome {
            traces: BTreeMap::new(),
            client: BTreeMap::new(),
        };
        for (i, (s, end)) in [(&talker, &talker_end.0), (&silent, &silent_end.0)]
            .into_iter()
            .enumerate()
        {
            let raw = trace_checked(&log, local_port(s), &format!("{backend} idle {i}"));
            if i == 0 {
                // The echo drained before the connection went idle.
                let t = raw.iter().position(|e| *e == Ev::Timeout).expect("timeout");
                assert!(raw[..t].contains(&Ev::Sent), "{backend}: {raw:?}");
            }
            out.traces.insert(i, normalize(&raw));
            out.client.insert(i, format!("{end:?}"));
        }
        let c = server.stop();
        assert_eq!(c.timeouts, 2, "{backend}: both connections timed out");
        out
    });
    let closed = |data: Option<usize>| {
        let mut v = vec![Ev::Open];
        v.extend(data.map(Ev::Data));
        v.extend([Ev::Timeout, Ev::Close("IdleTimeout".into())]);
        v
    };
    let expected = Outcome {
        traces: [(0, closed(Some(4))), (1, closed(None))].into(),
        client: [
            (0, format!("{:?}", Ended::Eof(0))),
            (1, format!("{:?}", Ended::Eof(0))),
        ]
        .into(),
    };
    assert_parity(&results, &expected);
}

/// Response sizes of the server-close scenario: small, one buffer, several MiB.
const RESPONSES: [usize; 3] = [10, 16 * 1024, 3 << 20];

#[test]
fn server_close_after_send_trace_is_identical() {
    let results = on_backends(|backend| {
        let log: Log = Arc::default();
        let server = start(backend, Mode::Respond, &log);
        let ends: Vec<(u16, String)> = std::thread::scope(|sc| {
            let clients: Vec<_> = RESPONSES
                .iter()
                .map(|&n| {
                    let addr = server.addr;
                    sc.spawn(move || {
                        let mut s = connect(addr);
                        // The request in two pieces: the handler waits for the line.
                        let req = format!("{n}\n");
                        let (a, b) = req.as_bytes().split_at(1);
                        s.write_all(a).expect("write");
                        s.write_all(b).expect("write");
                        let end = match read_to_eof(&mut s) {
                            Ok(got) => {
                                assert!(got == response(n), "{backend}: response of {n} differs");
                                format!("eof after {}", got.len())
                            }
                            Err((got, e)) => format!("error {e} after {}", got.len()),
                        };
                        (local_port(&s), end)
                    })
                })
                .collect();
            clients.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut out = Outcome {
            traces: BTreeMap::new(),
            client: BTreeMap::new(),
        };
        for (i, (port, end)) in ends.into_iter().enumerate() {
            let raw = trace_checked(&log, port, &format!("{backend} respond {i}"));
            // on_sent is for an open connection whose queue drained: never once the
            // handler asked to close.
            assert!(
                !raw.contains(&Ev::Sent),
                "{backend} respond {i}: no on_sent after close(): {raw:?}"
            );
            out.traces.insert(i, normalize(&raw));
            out.client.insert(i, end);
        }
        let c = server.stop();
        assert_eq!(c.closes, RESPONSES.len() as u64);
        out
    });
    let expected = Outcome {
        traces: RESPONSES
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let req = format!("{n}\n").len();
                (i, vec![Ev::Open, Ev::Data(req), Ev::Close("Local".into())])
            })
            .collect(),
        client: RESPONSES
            .iter()
            .enumerate()
            .map(|(i, n)| (i, format!("eof after {n}")))
            .collect(),
    };
    assert_parity(&results, &expected);
}
