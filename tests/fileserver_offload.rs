//! `StaticFiles` resolves, opens and stats files off the worker thread (issue 8
//! defect 15, ARCHITECTURE.md decision 14): on the worker's helper thread, with the
//! result handed back to the connection on its worker. Many concurrent requests are
//! answered byte-exact; connections that vanish while their lookup is out leak no
//! file descriptor; the lookups run on the helper thread. (With `inline_lookup` off:
//! a cached plain file is otherwise opened on the worker, see fileserver_inline.rs.)

mod support;

use ringcore::http::{Limits, StaticFiles};
use std::path::{Path, PathBuf};
use support::client::{set_linger_zero, Rng};
use support::http::{get, HttpClient};
use support::{for_each_backend, start_server, wait_until};

/// `<tmp>/root` with `f0.bin` .. `f7.bin` of different sizes; removed on drop.
struct Tree {
    dir: PathBuf,
    root: PathBuf,
    files: Vec<Vec<u8>>,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let dir =
            std::env::temp_dir().join(format!("ringcore-offload-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut rng = Rng::new(0x0FF1);
        let files: Vec<Vec<u8>> = (0..8).map(|i| rng.bytes(1 + i * 40_000)).collect();
        for (i, f) in files.iter().enumerate() {
            std::fs::write(root.join(format!("f{i}.bin")), f).unwrap();
        }
        let root = root.canonicalize().unwrap();
        Tree { dir, root, files }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server whose every lookup goes to the helper thread: these files are all in the
/// dentry cache, so with `inline_lookup` on (the default) they would be opened on the
/// worker (tests/fileserver_inline.rs covers that path).
fn helper_only(root: &Path) -> impl Fn(&ringcore::ConnInfo) -> StaticFiles + Send + Sync + 'static {
    StaticFiles::builder(root)
        .limits(Limits::default())
        .inline_lookup(false)
        .factory()
        .expect("root")
}

/// This process's descriptors open on a file under `root`.
fn fds_under(root: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(root))
        .count()
}

/// Threads of this process named like the offload helper.
fn helper_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|n| n.trim_end().starts_with("ringcore-w") && n.trim_end().ends_with("-off"))
        .count()
}

#[test]
fn concurrent_requests_are_looked_up_off_the_worker() {
    for_each_backend(|backend| {
        let tree = Tree::new(&format!("many-{backend}"));
        let factory = helper_only(&tree.root);
        let server = start_server(backend, |b| b.workers(1), factory);
        std::thread::scope(|s| {
            for t in 0..16 {
                let tree = &tree;
                let addr = server.addr;
                s.spawn(move || {
                    let mut c = HttpClient::connect(addr);
                    for i in 0..24 {
                        let n = (t + i) % tree.files.len();
                        // Pipelined in pairs: the second waits for the first's lookup.
                        let mut req = get("GET", &format!("/f{n}.bin"), "");
                        req.extend_from_slice(&get("HEAD", "/missing", ""));
                        c.send(&req);
                        let r = c.read_response(false);
                        assert_eq!(r.status, 200, "thread {t} request {i}");
                        assert!(r.body == tree.files[n], "thread {t} request {i}: body");
                        assert_eq!(c.read_response(true).status, 404, "thread {t} {i}");
                    }
                });
            }
        });
        // The lookups ran on the worker's helper thread (before the fix there was
        // none: the worker opened the files itself).
        assert!(helper_threads() >= 1, "no offload helper thread");
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        wait_until("no file left open", || fds_under(&tree.root) == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn connections_gone_during_their_lookup_leak_no_fd() {
    for_each_backend(|backend| {
        let tree = Tree::new(&format!("gone-{backend}"));
        let factory = helper_only(&tree.root);
        let server = start_server(backend, |b| b.workers(1), factory);
        // Each client asks for a file and resets at once: most are gone before their
        // lookup result comes back (or while their file is being sent); the opened
        // file is then closed, by the stale result's drop or the connection's close.
        for i in 0..400 {
            let mut c = HttpClient::connect(server.addr);
            c.send(&get("GET", &format!("/f{}.bin", i % 8), ""));
            set_linger_zero(&c.s);
            drop(c);
        }
        // A live request is still served afterwards.
        let mut c = HttpClient::connect(server.addr);
        c.send(&get("GET", "/f1.bin", ""));
        assert_eq!(c.read_response(false).body, tree.files[1]);
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        wait_until("no file left open", || fds_under(&tree.root) == 0);
        assert_eq!(server.stop().panics, 0);
    });
}
