//! HTTP/1.1 request parsing (`ringcore::http::RequestParser`) and response rendering
//! (`write_response`), the per-request CPU of the plaintext benchmark outside the I/O.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ringcore::http::{write_response, DateCache, Limits, Reply, RequestParser, Status};
use std::time::SystemTime;

const WRK_GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const BROWSER_GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: server\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: a=b; c=d\r\n\r\n";

fn parse_all(parser: &mut RequestParser, mut buf: &[u8]) -> usize {
    let mut n = 0;
    while !buf.is_empty() {
        match parser.parse(buf) {
            Ok(Status::Complete { request, consumed }) => {
                black_box(request.path());
                n += 1;
                buf = &buf[consumed..];
            }
            _ => break,
        }
    }
    n
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_parse");
    for (name, req) in [("small", WRK_GET), ("browser", BROWSER_GET)] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{name} x1"), |b| {
            let mut parser = RequestParser::new(Limits::default());
            b.iter(|| parse_all(&mut parser, black_box(req)))
        });
        let pipelined: Vec<u8> = req.repeat(16);
        g.throughput(Throughput::Elements(16));
        g.bench_function(format!("{name} pipelined x16"), |b| {
            let mut parser = RequestParser::new(Limits::default());
            b.iter(|| parse_all(&mut parser, black_box(&pipelined)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("http_render");
    g.throughput(Throughput::Elements(16));
    g.bench_function("plaintext x16", |b| {
        let date = DateCache::new(SystemTime::now());
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            for _ in 0..16 {
                write_response(
                    &mut out,
                    &date,
                    Reply::default(),
                    200,
                    "text/plain",
                    b"Hello, World!",
                );
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
