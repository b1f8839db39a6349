//! `send_file` under every splice mode of the io_uring backend (issue 12 item 6):
//! io-wq splices (`ring`), inline pipe -> socket (`drain`), both inline (`inline`),
//! `sendfile(2)` on the worker (`Config::sendfile`, the default with `inline`), and
//! the epoll backend beside them. Every path must deliver the same bytes in order
//! (a file between two in-memory sends, several files per connection, a reader with a
//! small receive buffer so the socket fills and the inline drain or the sendfile meets
//! `EAGAIN`), and the counters must show which path ran. A sendfile the kernel refuses
//! (`EINVAL`, injected) must hand the rest of its file to the splice pair.

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

fn run(backend: BackendKind, mode: SpliceMode, sendfile: bool, file: &Arc<TempFile>) {
    run_with(backend, mode, sendfile, None, file);
}

fn run_with(
    backend: BackendKind,
    mode: SpliceMode,
    sendfile: bool,
    faults: Option<ringcore_runtime::fault::FaultPlan>,
    file: &Arc<TempFile>,
) -> ringcore::Counters {
    let copies = 3;
    let f = file.clone();
    let server = start_server(
        backend,
        |b| {
            let b = b.splice_mode(mode).sendfile(sendfile);
            match faults {
                Some(plan) => b.fault_injection(plan),
                None => b,
            }
        },
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
    // RINGCORE_SPLICE / RINGCORE_SENDFILE (the test matrix's switches) override the
    // builder's settings.
    let mode = std::env::var("RINGCORE_SPLICE")
        .ok()
        .and_then(|v| SpliceMode::parse(&v))
        .unwrap_or(mode);
    let sendfile = std::env::var("RINGCORE_SENDFILE")
        .ok()
        .map_or(sendfile, |v| v.trim() != "0");
    let by_sendfile = sendfile && mode == SpliceMode::Inline;
    let tag = format!("{backend} {mode:?} sendfile={sendfile}");
    if by_sendfile {
        if faults.is_none() {
            assert!(c.sendfiles > 0, "{tag}: no sendfile ran: {c:?}");
            assert_eq!(c.inline_splices, 0, "{tag}: a splice ran: {c:?}");
        }
    } else {
        assert_eq!(c.sendfiles, 0, "{tag}: a sendfile ran: {c:?}");
        match (backend, mode) {
            (BackendKind::Uring, SpliceMode::Ring) | (BackendKind::Epoll, _) => {
                assert_eq!(c.inline_splices, 0, "{tag}")
            }
            _ => assert!(c.inline_splices > 0, "{tag}: nothing ran inline"),
        }
    }
    server.stop();
    c
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
            for sendfile in [true, false] {
                run(backend, mode, sendfile, &file);
            }
        }
    });
}

/// Sendfiles refused with `EINVAL` (as for a file system without splice support; the
/// fault injector answers a share of them unrun) and shortened: each refused file
/// continues by the splice pair from where it stopped, and every byte still arrives
/// in order. Both paths must have run.
#[test]
fn a_refused_sendfile_continues_by_splice() {
    use ringcore_runtime::fault::{stats, FaultPlan, FaultRates};
    if std::env::var("RINGCORE_SENDFILE").is_ok_and(|v| v.trim() == "0")
        || std::env::var("RINGCORE_SPLICE").is_ok_and(|v| v.trim() != "inline")
    {
        return; // the matrix turned sendfile off: nothing to refuse
    }
    let file = TempFile::new("refused", 700_001);
    for_each_backend(|backend| {
        for refuse in [1000, 500] {
            let mut rates = FaultRates::none();
            rates.sendfile_refuse = refuse;
            rates.short_splice = 300;
            let before = stats().sendfile_refusals;
            let c = run_with(
                backend,
                SpliceMode::Inline,
                true,
                Some(FaultPlan::new(21).rates(rates)),
                &file,
            );
            assert!(
                stats().sendfile_refusals > before,
                "{backend}: no sendfile was refused"
            );
            assert!(
                c.inline_splices > 0 || backend == BackendKind::Epoll,
                "{backend} refuse={refuse}: no splice took over: {c:?}"
            );
            if refuse < 1000 {
                assert!(c.sendfiles > 0, "{backend}: no sendfile ran: {c:?}");
            }
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
