//! `TcpStats::wrap`: one TCP_INFO sample per connection when the peer ends it, on both
//! backends, visible in the Prometheus text.

mod support;

use ringcore::{ConnInfo, Listeners, Serve, SocketOptions, TcpStats};
use std::io::{Read, Write};
use std::net::TcpStream;

#[test]
fn connections_are_sampled_at_end_of_stream() {
    support::for_each_backend(|backend| {
        let stats = TcpStats::new(1);
        let l = Listeners::bind("127.0.0.1:0", 1, &SocketOptions::default()).unwrap();
        let addr = l.local_addr();
        let rt = support::base_builder(backend).build().unwrap();
        let h = rt.handle();
        let factory = stats.wrap(|_: &ConnInfo| support::Echo);
        let j = std::thread::spawn(move || rt.serve(l, factory));
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"hello").unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            // The server closes after our FIN: read to its end of stream.
            c.set_read_timeout(Some(support::DEADLINE)).unwrap();
            assert_eq!(c.read(&mut b).unwrap(), 0);
        }
        support::wait_until("3 samples", || stats.samples() == 3);
        let t = stats.to_prometheus();
        assert!(
            t.contains("ringcore_tcp_rtt_seconds_count{worker=\"0\"} 3"),
            "{t}"
        );
        // Loopback RTTs are far below 250 ms: every sample is in a finite bucket.
        assert!(
            t.contains("ringcore_tcp_rtt_seconds_bucket{worker=\"0\",le=\"0.25\"} 3"),
            "{t}"
        );
        h.shutdown();
        j.join().unwrap().unwrap();
    });
}
