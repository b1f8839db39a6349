//! `send_file` under every splice mode of the io_uring backend (issue 12 item 6):
//! io-wq splices (`ring`), inline pipe -> socket (`drain`), both inline (`inline`), and
//! the epoll backend beside them. Every mode must deliver the same bytes in order
//! (a file between two in-memory sends, several files per connection, a reader with a
//! small receive buffer so the socket fills and the inline drain meets `EAGAIN`), and
//! the counters must show which path ran.

mod support;

use ringcore::runtime::SpliceMode;
use ringcore::{BackendKind, Conn, ConnInfo, Handler};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use support::client::{connect, connect_small_rcvbuf, read_to_eof, Rng};
use support::{for_each_backend, start_server};

struct TempFile {
    path: PathBuf,
    data: Vec<u8>,
}

impl TempFile {
    fn new(tag: &str, len: usize) -> Arc<TempFile> {
        let path =
            std::env::temp_dir().join(format!("ringcore-splice-{}-{tag}", std::process::id()));
        let data = Rng::new(len as u64 + 7).bytes(len);
        std::fs::write(&path, &data).expect("write the temp file");
        Arc::new(TempFile { path, data })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// On the first byte: "<" + the file `copies` times (with "|" between) + ">", then close.
struct Files {
    file: Arc<TempFile>,
    copies: usize,
}

impl Handler for Files {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(b"<");
        for i in 0..self.copies {
            if i > 0 {
                conn.send(b"|");
            }
            let f = std::fs::File::open(&self.file.path).expect("open the temp file");
            conn.send_file(f, 0, self.file.data.len() as u64);
        }
        conn.send(b">");
        conn.close();
        data.len()
    }
}

fn expected(file: &TempFile, copies: usize) -> Vec<u8> {
    let mut want = b"<".to_vec();
    for i in 0..copies {
        if i > 0 {
            want.push(b'|');
        }
        want.extend_from_slice(&file.data);
    }
    want.push(b'>');
    want
}

fn run(backend: BackendKind, mode: SpliceMode, file: &Arc<TempFile>) {
    let copies = 3;
    let f = file.clone();
    let server = start_server(
        backend,
        |b| b.splice_mode(mode),
        move |_: &ConnInfo| Files {
            file: f.clone(),
            copies,
        },
    );
    let want = expected(file, copies);
    let mut got_total = 0u64;
    for small in [false, true, false, true] {
        let mut s = if small {
            // The socket fills long before a 256 KiB pipe is drained: EAGAIN, poll, retry.
            connect_small_rcvbuf(server.addr, 4096)
        } else {
            connect(server.addr)
        };
        s.write_all(b"go").unwrap();
        let got = read_to_eof(&mut s).expect("the whole response");
        assert_eq!(got.len(), want.len(), "{backend} {mode:?}: length");
        assert!(got == want, "{backend} {mode:?}: bytes differ");
        got_total += got.len() as u64;
    }
    let c = server.wait_counters("every connection closed", |c| c.open_conns == 0);
    assert_eq!(c.bytes_out, got_total);
    // RINGCORE_SPLICE (the test matrix's switch) overrides the builder's mode.
    let mode = std::env::var("RINGCORE_SPLICE")
        .ok()
        .and_then(|v| SpliceMode::parse(&v))
        .unwrap_or(mode);
    match (backend, mode) {
        (BackendKind::Uring, SpliceMode::Ring) | (BackendKind::Epoll, _) => {
            assert_eq!(c.inline_splices, 0, "{backend} {mode:?}")
        }
        _ => assert!(
            c.inline_splices > 0,
            "{backend} {mode:?}: nothing ran inline"
        ),
    }
    server.stop();
}

#[test]
fn every_splice_mode_delivers_the_same_bytes() {
    let file = TempFile::new("modes", 1_048_576 + 12_345);
    for_each_backend(|backend| {
        for mode in [
            SpliceMode::Ring,
            SpliceMode::InlineDrain,
            SpliceMode::Inline,
        ] {
            run(backend, mode, &file);
        }
    });
}

#[test]
fn splice_mode_parses_its_env_values() {
    assert_eq!(SpliceMode::parse("ring"), Some(SpliceMode::Ring));
    assert_eq!(SpliceMode::parse("drain"), Some(SpliceMode::InlineDrain));
    assert_eq!(SpliceMode::parse("inline"), Some(SpliceMode::Inline));
    assert_eq!(SpliceMode::parse("sideways"), None);
}
