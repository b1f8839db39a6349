//! Workers sharing one Unix listener each get a share of its connections, on both
//! backends.
//!
//! Why this is not timing-dependent: every worker waits for connections on the shared
//! socket as an exclusive waiter in the socket's wait queue, and a worker that accepted
//! leaves the queue and joins again at its tail before its handler runs. On io_uring
//! each single-shot accept is such a waiter (a completed one re-arms at the tail); on
//! epoll the worker's epoll instance is registered with `EPOLLEXCLUSIVE` and moved to
//! the tail (`EPOLL_CTL_DEL` + `ADD`) right after each `accept4`. The clients below
//! connect one at a time, and each waits for the server's greeting, which the handler
//! sends after its worker moved back, so when connection k+1 arrives the worker that
//! took connection k is behind the other one. The kernel wakes the first exclusive
//! waiter that can take the wake-up (on epoll: whose instance has a thread in
//! `epoll_wait`; an idle worker sits there), so the other worker gets it. For a worker
//! to get none of the 200, it would have to be busy at every one of 200 arrivals, with
//! nothing to do. Before the rotation, epoll woke both workers for every connection and
//! let them race: on a quiet machine worker 0 won all 200 (a clean-clone CI run); a
//! multishot accept on io_uring stays first in the queue and took 200/0 too.

mod support;

use ringcore::{Conn, ConnInfo, Handler, Listeners, Serve, SocketOptions};
use std::io::Read;
use std::os::unix::net::UnixStream;

/// Greets with the worker's id, then closes.
struct WhichWorker;

impl Handler for WhichWorker {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let w = conn.worker_id() as u8;
        conn.send(&[w]);
        conn.close();
    }
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

#[test]
fn workers_sharing_a_unix_listener_each_get_connections() {
    const WORKERS: usize = 2;
    const CONNS: usize = 200;
    support::for_each_backend(|backend| {
        let dir =
            std::env::temp_dir().join(format!("ringcore-balance-{}-{backend}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let l = Listeners::bind(
            format!("unix:{}", path.display()),
            WORKERS,
            &SocketOptions::default(),
        )
        .unwrap();
        let rt = support::base_builder(backend)
            .workers(WORKERS)
            .build()
            .unwrap();
        let h = rt.handle();
        let j = std::thread::spawn(move || rt.serve(l, |_: &ConnInfo| WhichWorker));
        let mut per_worker = [0usize; WORKERS];
        for _ in 0..CONNS {
            let mut s = UnixStream::connect(&path).expect("connect");
            s.set_read_timeout(Some(support::DEADLINE)).unwrap();
            let mut w = [0u8; 1];
            s.read_exact(&mut w).expect("the worker's greeting");
            per_worker[w[0] as usize] += 1;
        }
        eprintln!("{CONNS} sequential connections per worker on {backend}: {per_worker:?}");
        assert_eq!(per_worker.iter().sum::<usize>(), CONNS);
        assert!(
            per_worker.iter().all(|&n| n >= 1),
            "every worker must get some connections: {per_worker:?}"
        );
        h.shutdown();
        j.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
