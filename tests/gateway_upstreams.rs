//! The gateway over several upstreams (`GatewayConfig::add_upstream`, examples/gateway.rs
//! `--upstream` repeated), both backends, real sockets: requests alternate between
//! live upstreams; with one of two dead every request still succeeds (the failed
//! connect marks it down and the request goes to the other); with all dead the client
//! gets a 502 that says so; an upstream that resets during a request-body upload gives
//! the client a 502 (or a close), nothing hangs, and no connection is left open.

mod support;

use ringcore::http::{
    AccessHook, AccessRecord, GatewayConfig, GatewayConn, HttpConn, Limits, Request, Response,
    Router,
};
use ringcore::BackendKind;
use ringcore::ConnInfo;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{connect, set_linger_zero};
use support::http::{get, HttpClient};
use support::{for_each_backend, start_server, TestServer};

/// An HTTP upstream answering `/api/who` with `name`.
fn upstream(backend: BackendKind, name: &'static str) -> TestServer {
    let router = Router::new().get("/api/who", move |_: &Request<'_>, res: &mut Response| {
        res.set_content_type("text/plain").set_body(name.as_bytes());
    });
    start_server(
        backend,
        |b| b.workers(1),
        HttpConn::factory(router, Limits::default()),
    )
}

/// A port nothing listens on.
fn dead() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A one-worker gateway; its local route `/down/<port>` says whether the upstream
/// `127.0.0.1:<port>` is marked down on that worker.
fn gateway(backend: BackendKind, cfg: GatewayConfig) -> TestServer {
    let router = Router::new().get("/down/:port", |req: &Request<'_>, res: &mut Response| {
        let port: u16 = req.param("port").unwrap_or("0").parse().unwrap_or(0);
        let down = ringcore::http::gateway_upstream_down(SocketAddr::from(([127, 0, 0, 1], port)));
        res.set_body(down.to_string().as_bytes());
    });
    start_server(backend, |b| b.workers(1), GatewayConn::factory(router, cfg))
}

fn ask(c: &mut HttpClient, target: &str) -> (u16, String) {
    c.send(&get("GET", target, ""));
    let r = c.read_response(false);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn live_upstreams_take_turns_and_a_dead_one_is_skipped() {
    for_each_backend(|backend| {
        let (a, b) = (upstream(backend, "A"), upstream(backend, "B"));
        // No pool: every request connects, so `open_conns` is 0 after the clients.
        let cfg = |x, y| GatewayConfig::new(x).add_upstream(y).pool_max_idle(0);
        let gw = gateway(backend, cfg(a.addr, b.addr));
        let mut c = HttpClient::connect(gw.addr);
        let got: Vec<String> = (0..6).map(|_| ask(&mut c, "/api/who").1).collect();
        assert_eq!(got.iter().filter(|w| *w == "A").count(), 3, "{got:?}");
        assert_eq!(got.iter().filter(|w| *w == "B").count(), 3, "{got:?}");
        drop(c);

        // One of two dead: every request succeeds, on new and kept-alive connections.
        let d = dead();
        let gw2 = gateway(backend, cfg(d, a.addr));
        let mut c = HttpClient::connect(gw2.addr);
        for i in 0..10 {
            assert_eq!(ask(&mut c, "/api/who"), (200, "A".into()), "request {i}");
            let mut fresh = HttpClient::connect(gw2.addr);
            assert_eq!(ask(&mut fresh, "/api/who"), (200, "A".into()), "fresh {i}");
        }
        let down = format!("/down/{}", d.port());
        assert_eq!(
            ask(&mut c, &down),
            (200, "true".into()),
            "the dead one is marked down"
        );
        let up = format!("/down/{}", a.addr.port());
        assert_eq!(ask(&mut c, &up), (200, "false".into()));
        drop(c);
        for s in [gw, gw2, a, b] {
            s.wait_counters("closed", |c| c.open_conns == 0);
            assert_eq!(s.stop().panics, 0);
        }
    });
}

#[test]
fn all_upstreams_dead_is_502_saying_so() {
    for_each_backend(|backend| {
        let gw = gateway(
            backend,
            GatewayConfig::new(dead())
                .add_upstream(dead())
                .down_time(Duration::from_secs(600)),
        );
        let (status, body) = ask(&mut HttpClient::connect(gw.addr), "/api/x");
        assert_eq!(status, 502, "{body}");
        assert!(
            body.contains("no live upstream (all 2 failed or are down)"),
            "{body}"
        );
        assert!(body.contains("refused"), "{body}");
        // Both are now marked down: the next request is answered without a connect.
        let mut c = HttpClient::connect(gw.addr);
        let (status, body) = ask(&mut c, "/api/x");
        assert_eq!(status, 502, "{body}");
        assert!(
            body.contains("no live upstream: all 2 are marked down"),
            "{body}"
        );
        drop(c);
        gw.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(gw.stop().panics, 0);
    });
}

#[test]
fn upstream_reset_during_upload_is_502_or_a_close_and_nothing_hangs() {
    for_each_backend(|backend| {
        // Reads the head and 64 KiB of the body, then resets.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let mut got = 0;
                let mut buf = [0u8; 8192];
                while got < 64 * 1024 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                set_linger_zero(&s);
            }
        });
        let gw = gateway(backend, GatewayConfig::new(up));
        for round in 0..3 {
            let mut s = connect(gw.addr);
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let len = 8 << 20;
            let head = format!("POST /api/up HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
            s.write_all(head.as_bytes()).unwrap();
            let mut w = s.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                let chunk = vec![b'u'; 64 * 1024];
                let mut sent = 0;
                while sent < len {
                    if w.write_all(&chunk).is_err() {
                        break; // the gateway gave up on the upload: expected
                    }
                    sent += chunk.len();
                }
            });
            let mut resp = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => resp.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("round {round}: the client hangs: {e}"),
                }
            }
            let text = String::from_utf8_lossy(&resp);
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 502 "),
                "round {round}: {text}"
            );
            drop(s);
            writer.join().unwrap();
        }
        gw.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(gw.stop().panics, 0);
    });
}

#[test]
fn access_log_names_the_upstream() {
    type Line = (String, String, u16, u64, Option<SocketAddr>);
    for_each_backend(|backend| {
        let a = upstream(backend, "A");
        let d = dead();
        let lines: Arc<Mutex<Vec<Line>>> = Arc::default();
        let sink = lines.clone();
        let hook: AccessHook = Arc::new(move |r: &AccessRecord<'_>| {
            let line = (
                r.method.to_string(),
                r.target.to_string(),
                r.status,
                r.bytes,
                r.upstream,
            );
            sink.lock().unwrap().push(line);
        });
        let router = Arc::new(Router::new().get(
            "/health",
            |_: &Request<'_>, res: &mut Response| {
                res.set_body(b"ok\n");
            },
        ));
        let cfg = Arc::new(GatewayConfig::new(d).add_upstream(a.addr).pool_max_idle(0));
        let gw = start_server(
            backend,
            |b| b.workers(1),
            move |info: &ConnInfo| {
                GatewayConn::new(router.clone(), cfg.clone(), None)
                    .with_access_log(info.peer_addr(), hook.clone())
            },
        );
        let mut c = HttpClient::connect(gw.addr);
        assert_eq!(ask(&mut c, "/api/who"), (200, "A".into()));
        assert_eq!(ask(&mut c, "/health"), (200, "ok\n".into()));
        drop(c);
        gw.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(gw.stop().panics, 0);
        let got = lines.lock().unwrap().clone();
        let want: Vec<Line> = vec![
            ("GET".into(), "/api/who".into(), 200, 1, Some(a.addr)),
            ("GET".into(), "/health".into(), 200, 3, None),
        ];
        assert_eq!(got, want);
        assert_eq!(a.stop().panics, 0);
    });
}
