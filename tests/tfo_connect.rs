//! TCP Fast Open on the client side: an outbound connection with
//! `SocketOptions::fastopen_connect(true)` (`TCP_FASTOPEN_CONNECT`) sends its first
//! bytes from `on_open` and gets them echoed, on both backends. With
//! `TCP_FASTOPEN_CONNECT` the connect completes at once and the first send carries the
//! SYN (with the data once a cookie is cached and `net.ipv4.tcp_fastopen` allows it);
//! this checks the connect/send path stays correct however the kernel decides.

mod support;

use ringcore::net::sockopt::get_int;
use ringcore::{CloseReason, Conn, Connect, ConnectOptions, Handler, SocketOptions};
use std::sync::{Arc, Mutex};

#[derive(Default, Debug)]
struct Outcome {
    tfo_option: Option<i32>,
    echoed: Vec<u8>,
    reason: Option<String>,
}

struct Client(Arc<Mutex<Outcome>>);

const HELLO: &[u8] = b"hello over a fast-open connect";

impl Handler for Client {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let v = get_int(
            conn.raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN_CONNECT,
            "tfoc",
        );
        self.0.lock().unwrap().tfo_option = v.ok();
        conn.send(HELLO);
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let mut o = self.0.lock().unwrap();
        o.echoed.extend_from_slice(data);
        if o.echoed.len() >= HELLO.len() {
            conn.close();
        }
        data.len()
    }
    fn on_close(&mut self, reason: CloseReason) {
        self.0.lock().unwrap().reason = Some(format!("{reason:?}"));
    }
}

#[test]
fn fastopen_connect_sends_data_from_on_open() {
    support::for_each_backend(|backend| {
        let srv = support::start_server_opts(
            backend,
            |b| b,
            &SocketOptions::default().fastopen(Some(16)),
            support::echo_factory,
        );
        let out = Arc::new(Mutex::new(Outcome::default()));
        let rt = support::base_builder(backend).build().unwrap();
        let o2 = out.clone();
        let opts =
            ConnectOptions::default().socket(SocketOptions::default().fastopen_connect(true));
        rt.connect(srv.addr, 1, opts, move |_: &ringcore::ConnInfo| {
            Client(o2.clone())
        })
        .expect("client run");
        let o = out.lock().unwrap();
        assert_eq!(o.tfo_option, Some(1), "{o:?}");
        assert_eq!(o.echoed, HELLO, "{o:?}");
        assert_eq!(o.reason.as_deref(), Some("Local"), "{o:?}");
        drop(o);
        srv.stop();
    });
}
