//! The offload pool behind `Router::offload` (and `Conn::try_offload`), both
//! backends, real sockets: a full queue is answered `503` with `Retry-After` (and
//! the pool serves again once it drains); a job past `Limits::offload_timeout` is a
//! `504`, and its late result never reaches the connection (kept alive and serving
//! other requests) nor a new connection in its slot; many jobs from many
//! connections all complete.
//!
//! `OffloadLimits` is process-wide and read when a worker starts, so the tests of
//! this binary take turns (`SERIAL`) and set the limits before starting a server.

mod support;

use ringcore::http::{HttpConn, Limits, Request, Response, Router};
use ringcore::OffloadLimits;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::http::{get, Gate, HttpClient};
use support::{for_each_backend, start_server, wait_until, TestServer};

static SERIAL: Mutex<()> = Mutex::new(());

fn start(backend: ringcore::BackendKind, gate: Arc<Gate>, limits: Limits) -> TestServer {
    let router = Router::new()
        .offload("GET", "/block", move |_: &Request<'_>| {
            let gate = gate.clone();
            gate.created.fetch_add(1, Ordering::SeqCst);
            move |res: &mut Response| {
                gate.wait();
                res.set_body(b"blocked, then done");
                gate.finished.fetch_add(1, Ordering::SeqCst);
            }
        })
        .offload("GET", "/quick/:n", |req: &Request<'_>| {
            let n = req.param("n").unwrap_or("").to_string();
            move |res: &mut Response| {
                res.set_body(format!("quick {n}").as_bytes());
            }
        })
        .get("/plain", |_: &Request<'_>, res: &mut Response| {
            res.set_body(b"plain");
        });
    start_server(backend, |b| b.workers(1), HttpConn::factory(router, limits))
}

#[test]
fn full_queue_is_503_with_retry_after() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    OffloadLimits {
        threads: 2,
        queue: 2,
    }
    .set();
    for_each_backend(|backend| {
        let gate = Arc::new(Gate::default());
        let server = start(backend, gate.clone(), Limits::default());
        // Two running and two queued: the pool is full.
        let mut held: Vec<HttpClient> = (0..4)
            .map(|i| {
                let mut c = HttpClient::connect(server.addr);
                c.send(&get("GET", "/block", ""));
                wait_until("job submitted", || {
                    gate.created.load(Ordering::SeqCst) == i + 1
                });
                c
            })
            .collect();
        let mut c = HttpClient::connect(server.addr);
        for _ in 0..2 {
            c.send(&get("GET", "/quick/1", ""));
            let r = c.read_response(false);
            assert_eq!(r.status, 503);
            assert_eq!(r.header("retry-after"), Some("1"));
            assert!(!r.says_close(), "a 503 keeps the connection");
        }
        // Other routes are served meanwhile.
        c.send(&get("GET", "/plain", ""));
        assert_eq!(c.read_response(false).body, b"plain");
        gate.open();
        for h in &mut held {
            let r = h.read_response(false);
            assert_eq!((r.status, &r.body[..]), (200, &b"blocked, then done"[..]));
        }
        // Drained: taken again.
        c.send(&get("GET", "/quick/2", ""));
        let r = c.read_response(false);
        assert_eq!((r.status, &r.body[..]), (200, &b"quick 2"[..]));
        drop((c, held));
        server.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn late_result_is_504_and_never_reaches_the_connection() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    OffloadLimits {
        threads: 1,
        queue: 8,
    }
    .set();
    for_each_backend(|backend| {
        let gate = Arc::new(Gate::default());
        let limits = Limits::default().offload_timeout(Duration::from_millis(100));
        let server = start(backend, gate.clone(), limits);
        // Kept alive: 504, then other requests on the same connection.
        let mut c = HttpClient::connect(server.addr);
        c.send(&get("GET", "/block", ""));
        let r = c.read_response(false);
        assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
        c.send(&get("GET", "/plain", ""));
        assert_eq!(c.read_response(false).body, b"plain");
        // Closed after its 504: a new connection may take its slot.
        let mut gone = HttpClient::connect(server.addr);
        gone.send(&get("GET", "/block", ""));
        assert_eq!(gone.read_response(false).status, 504);
        drop(gone);
        let mut next = HttpClient::connect(server.addr);
        // A queued job whose deadline passes is not run at all: the one helper is
        // held by the first job, so the second never started.
        gate.open();
        wait_until("the first job finished", || {
            gate.finished.load(Ordering::SeqCst) >= 1
        });
        // A quick job after the late results came back (the helper runs jobs in
        // order): whatever the late ones carried did not answer anything.
        for (client, n) in [(&mut c, 1), (&mut next, 2)] {
            client.send(&get("GET", &format!("/quick/{n}"), ""));
            let r = client.read_response(false);
            assert_eq!((r.status, r.body), (200, format!("quick {n}").into_bytes()));
            client.send(&get("GET", "/plain", ""));
            assert_eq!(client.read_response(false).body, b"plain");
            assert_eq!(client.buffered(), 0, "nothing stray");
        }
        assert_eq!(
            gate.finished.load(Ordering::SeqCst),
            1,
            "the queued late job never ran"
        );
        drop((c, next));
        server.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn many_jobs_from_many_connections_all_complete() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    OffloadLimits {
        threads: 3,
        queue: 1024,
    }
    .set();
    for_each_backend(|backend| {
        let server = start(backend, Arc::new(Gate::default()), Limits::default());
        let addr = server.addr;
        let clients: Vec<_> = (0..32)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut c = HttpClient::connect(addr);
                    // Pipelined: each waits behind the one before it on the connection.
                    let mut all = Vec::new();
                    for j in 0..8 {
                        all.extend_from_slice(&get("GET", &format!("/quick/{i}-{j}"), ""));
                    }
                    c.send(&all);
                    for j in 0..8 {
                        let r = c.read_response(false);
                        assert_eq!(r.status, 200);
                        assert_eq!(r.body, format!("quick {i}-{j}").into_bytes());
                    }
                })
            })
            .collect();
        for t in clients {
            t.join().unwrap();
        }
        server.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}
