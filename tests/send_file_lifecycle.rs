//! `send_file` and the pipe pool (issue 8, defects 2 and 3): more concurrent slow
//! downloads than the pool keeps, then a second batch (a pipe closed behind the epoll
//! backend's back left a stale registration that made new fds with its number wait
//! forever); aborts while a file segment is being spliced.

mod support;

use ringcore::{Conn, ConnInfo, Handler};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use support::client::Rng;
use support::{for_each_backend, start_server_opts};

/// A file in the temp directory, removed on drop.
struct TempFile {
    path: PathBuf,
    data: Vec<u8>,
}

impl TempFile {
    fn new(tag: &str, len: usize) -> Arc<TempFile> {
        let path =
            std::env::temp_dir().join(format!("ringcore-sendfile-{}-{tag}", std::process::id()));
        let data = Rng::new(len as u64).bytes(len);
        std::fs::write(&path, &data).expect("write the temp file");
        Arc::new(TempFile { path, data })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A client socket with a small receive buffer whose fd number is high (>= 4096):
/// the low numbers the server just freed go to the server's own new fds, not to the
/// test's clients.
fn connect_high_fd(addr: SocketAddr) -> TcpStream {
    // SAFETY: plain socket calls on fds this function owns; results are checked.
    unsafe {
        let low = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(low >= 0);
        let fd = libc::fcntl(low, libc::F_DUPFD_CLOEXEC, 4096);
        assert!(fd >= 0, "F_DUPFD: {}", std::io::Error::last_os_error());
        libc::close(low);
        support::client::connect_fd_small_rcvbuf(fd, addr, 8 * 1024)
    }
}

/// On its first byte, sends the whole file and closes after it.
struct Download {
    file: Arc<TempFile>,
    started: bool,
}

impl Handler for Download {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if !self.started {
            self.started = true;
            let f = std::fs::File::open(&self.file.path).expect("open the temp file");
            conn.send_file(f, 0, self.file.data.len() as u64);
            conn.close();
        }
        data.len()
    }
}

/// `n` clients ask at once and read only once every request reached the server, so
/// every download holds a pipe at the same time; then each reads its file to the end.
fn batch(server: &support::TestServer, file: &TempFile, n: usize, accepted_before: u64) {
    let mut clients: Vec<_> = (0..n)
        .map(|_| {
            let mut s = connect_high_fd(server.addr);
            s.write_all(b"g").unwrap();
            s
        })
        .collect();
    server.wait_counters("every request read", |c| {
        c.bytes_in >= accepted_before + n as u64
    });
    std::thread::scope(|sc| {
        for (i, s) in clients.iter_mut().enumerate() {
            sc.spawn(move || {
                let mut got = Vec::with_capacity(file.data.len());
                s.read_to_end(&mut got)
                    .unwrap_or_else(|e| panic!("download {i}: {e} after {} bytes", got.len()));
                assert!(got == file.data, "download {i}: wrong bytes");
            });
        }
    });
}

/// Defect 3: more concurrent downloads than the pipe pool keeps (64), then a second
/// batch on the same worker: every download completes.
#[test]
fn more_downloads_than_the_pipe_pool_then_more() {
    let file = TempFile::new("pool", 4 << 20);
    for_each_backend(|backend| {
        let f = file.clone();
        // Small send buffers: every download waits on its socket with its pipe in use.
        let opts = ringcore::SocketOptions::default().send_buffer(16 * 1024);
        let server = start_server_opts(
            backend,
            |b| b,
            &opts,
            move |_: &ConnInfo| Download {
                file: f.clone(),
                started: false,
            },
        );
        batch(&server, &file, 80, 0);
        server.wait_counters("first batch closed", |c| c.open_conns == 0);
        batch(&server, &file, 80, 80);
        server.wait_counters("second batch closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}
