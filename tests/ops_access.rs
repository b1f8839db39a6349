//! Access logs and metrics of the examples, as child processes on both backends:
//! combined and JSON lines for the http and file servers (client, method, path,
//! status, bytes, duration), per-connection lines for the proxy (client, upstream,
//! bytes each way, duration, close reason), and `/metrics` with `# HELP` and `# TYPE`
//! on every metric, responses by status and the latency histogram.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Stdio;
use support::for_each_backend;
use support::proc::{
    example_cmd, http_get, http_with_access_log, one_worker_cmd, scratch, wait_file, Proc,
};

/// Every sample line of a Prometheus text has its own `# HELP` and `# TYPE`.
fn assert_help_and_type(text: &str) {
    let mut helped = std::collections::HashSet::new();
    let mut typed = std::collections::HashSet::new();
    for l in text.lines() {
        if let Some(r) = l.strip_prefix("# HELP ") {
            let (name, help) = r.split_once(' ').expect("HELP text");
            assert!(!help.trim().is_empty(), "{l}");
            helped.insert(name.to_string());
        } else if let Some(r) = l.strip_prefix("# TYPE ") {
            typed.insert(r.split(' ').next().unwrap().to_string());
        } else if !l.is_empty() {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(helped.contains(family), "no # HELP for {name}");
            assert!(typed.contains(family), "no # TYPE for {name}");
        }
    }
}

/// The value of the sample `name` (with labels, exactly as printed).
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn http_access_log_combined_and_metrics() {
    for_each_backend(|b| {
        let (mut p, addr, log) = http_with_access_log(b, "http-combined");
        let extra = "User-Agent: ops-test/1\r\nReferer: http://r.example/x\r\n";
        assert_eq!(http_get(addr, "/plaintext?q=1", extra).0, 200);
        assert_eq!(http_get(addr, "/nope", "").0, 404);
        let mut c = support::http::HttpClient::connect(addr);
        c.send(&support::http::get("HEAD", "/plaintext", ""));
        assert_eq!(c.read_response(true).status, 200);
        c.send(b"BAD\x01 / HTTP/1.1\r\n\r\n");
        assert_eq!(c.read_response(false).status, 400);
        let text = wait_file(&log, "four access-log lines", |t| t.lines().count() >= 4);
        let lines: Vec<&str> = text.lines().collect();
        let first = lines[0];
        assert!(
            first.starts_with("127.0.0.1 - - [") && first.contains(" +0000] "),
            "{first}"
        );
        assert!(
            first.contains(
                "\"GET /plaintext?q=1 HTTP/1.1\" 200 13 \"http://r.example/x\" \"ops-test/1\" "
            ),
            "{first}"
        );
        let secs: f64 = first
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .expect("request time");
        assert!(secs >= 0.0);
        assert!(
            lines[1].contains("\"GET /nope HTTP/1.1\" 404 "),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("\"HEAD /plaintext HTTP/1.1\" 200 0 "),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("\"- - HTTP/1.1\" 400 "), "{}", lines[3]);

        let (st, body) = http_get(addr, "/metrics", "");
        assert_eq!(st, 200);
        let m = String::from_utf8(body).unwrap();
        assert_help_and_type(&m);
        let ok = sample(
            &m,
            "ringcore_http_responses_total{code=\"200\",class=\"2xx\"}",
        );
        assert_eq!(ok, Some(2), "{m}");
        let nf = sample(
            &m,
            "ringcore_http_responses_total{code=\"404\",class=\"4xx\"}",
        );
        assert_eq!(nf, Some(1), "{m}");
        let bad = sample(
            &m,
            "ringcore_http_responses_total{code=\"400\",class=\"4xx\"}",
        );
        assert_eq!(bad, Some(1), "{m}");
        assert_eq!(
            sample(&m, "ringcore_http_request_duration_seconds_count"),
            Some(4)
        );
        assert_eq!(
            sample(
                &m,
                "ringcore_http_request_duration_seconds_bucket{le=\"+Inf\"}"
            ),
            Some(4)
        );
        assert_eq!(sample(&m, "ringcore_access_log_dropped_total"), Some(0));
        p.terminate_when_ready();
        // The /metrics request itself was logged before the exit (close flushes).
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("\"GET /metrics HTTP/1.1\" 200 "), "{text}");
    });
}

#[test]
fn http_access_log_json_on_stdout() {
    for_each_backend(|b| {
        let mut cmd = one_worker_cmd(
            "http",
            b,
            &["--access-log", "-", "--access-log-format", "json"],
        );
        cmd.stdout(Stdio::piped());
        let mut p = Proc::spawn(cmd);
        let out = BufReader::new(p.child.stdout.take().unwrap());
        let addr = p.addr_after("listening on");
        assert_eq!(http_get(addr, "/json", "User-Agent: a\"b\r\n").0, 200);
        let line = out.lines().next().expect("a line").unwrap();
        assert!(line.starts_with("{\"time\":\""), "{line}");
        assert!(line.contains("\"client\":\"127.0.0.1:"), "{line}");
        assert!(
            line.contains("\"method\":\"GET\",\"path\":\"/json\",\"status\":200,\"bytes\":27,"),
            "{line}"
        );
        assert!(line.contains("\"duration_us\":"), "{line}");
        assert!(
            line.ends_with("\"referer\":\"\",\"user_agent\":\"a\\\"b\"}"),
            "{line}"
        );
        p.terminate_when_ready();
    });
}

/// The metrics endpoint's address from the example's log line.
fn metrics_addr(p: &mut Proc) -> SocketAddr {
    p.addr_after("metrics on http://")
}

#[test]
fn fileserver_access_log_and_metrics_addr() {
    for_each_backend(|b| {
        let dir = scratch(&format!("files-{}", b.name()));
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("f.txt"), vec![b'x'; 1000]).unwrap();
        let log = dir.join("access.json");
        let mut p = Proc::spawn(one_worker_cmd(
            "fileserver",
            b,
            &[
                "--root",
                root.to_str().unwrap(),
                "--access-log",
                log.to_str().unwrap(),
                "--access-log-format",
                "json",
                "--metrics-addr",
                "127.0.0.1:0",
            ],
        ));
        let maddr = metrics_addr(&mut p);
        let addr = p.addr_after("fileserver: serving");
        let (st, body) = http_get(addr, "/f.txt", "");
        assert_eq!((st, body.len()), (200, 1000));
        assert_eq!(http_get(addr, "/f.txt", "Range: bytes=0-9\r\n").0, 206);
        assert_eq!(http_get(addr, "/missing", "").0, 404);
        let text = wait_file(&log, "three lines", |t| t.lines().count() >= 3);
        let l: Vec<&str> = text.lines().collect();
        assert!(
            l[0].contains("\"path\":\"/f.txt\",\"status\":200,\"bytes\":1000,"),
            "{}",
            l[0]
        );
        assert!(l[1].contains("\"status\":206,\"bytes\":10,"), "{}", l[1]);
        assert!(
            l[2].contains("\"path\":\"/missing\",\"status\":404,"),
            "{}",
            l[2]
        );
        let (st, body) = http_get(maddr, "/metrics", "");
        assert_eq!(st, 200);
        let m = String::from_utf8(body).unwrap();
        assert_help_and_type(&m);
        assert_eq!(
            sample(
                &m,
                "ringcore_http_responses_total{code=\"206\",class=\"2xx\"}"
            ),
            Some(1),
            "{m}"
        );
        assert_eq!(sample(&m, "ringcore_accepts_total"), Some(3), "{m}");
        p.terminate_when_ready();
    });
}

#[test]
fn proxy_access_log_and_metrics_addr() {
    for_each_backend(|b| {
        let up = support::echo_upstream();
        for format in ["combined", "json"] {
            let dir = scratch(&format!("proxy-{}-{format}", b.name()));
            let log = dir.join("access.log");
            let mut p = Proc::spawn(example_cmd(
                "proxy",
                b,
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream",
                    &up.to_string(),
                    "--workers",
                    "1",
                    "--access-log",
                    log.to_str().unwrap(),
                    "--access-log-format",
                    format,
                    "--metrics-addr",
                    "127.0.0.1:0",
                ],
            ));
            let maddr = metrics_addr(&mut p);
            let addr = p.addr_after("proxy: ");
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(support::DEADLINE)).unwrap();
            let data = vec![b'p'; 3000];
            support::proc::echo_round(&mut s, &data);
            s.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
            drop(s);
            let text = wait_file(&log, "the tunnel's line", |t| t.lines().count() >= 1);
            let line = text.lines().next().unwrap();
            if format == "json" {
                assert!(line.contains("\"client\":\"127.0.0.1:"), "{line}");
                assert!(line.contains(&format!("\"upstream\":\"{up}\"")), "{line}");
                assert!(
                    line.contains("\"bytes_to_upstream\":3000,\"bytes_to_client\":3000,"),
                    "{line}"
                );
                assert!(line.contains("\"close_reason\":\"PeerClosed\""), "{line}");
                // Both legs' TCP_INFO, sampled just before the sockets closed: the
                // client sent 3000 bytes (+1 for its FIN), the upstream acked 3000 (+1).
                for leg in ["client_tcp", "upstream_tcp"] {
                    assert!(line.contains(&format!("\"{leg}\":{{\"rtt_us\":")), "{line}");
                }
                assert!(
                    line.contains("\"bytes_received\":3000,")
                        || line.contains("\"bytes_received\":3001,"),
                    "{line}"
                );
            } else {
                assert!(
                    line.starts_with("127.0.0.1 - - [")
                        && line.contains(&format!("\"CONNECT {up}\" 3000 3000 "))
                        && line.ends_with(" \"PeerClosed\""),
                    "{line}"
                );
            }
            let (st, body) = http_get(maddr, "/metrics", "");
            assert_eq!(st, 200);
            let m = String::from_utf8(body).unwrap();
            assert_help_and_type(&m);
            assert_eq!(sample(&m, "ringcore_connects_total"), Some(1), "{m}");
            assert_eq!(
                sample(&m, "ringcore_access_log_lines_total"),
                Some(1),
                "{m}"
            );
            p.terminate_when_ready();
        }
    });
}
