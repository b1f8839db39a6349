//! File lookups on the worker (`StaticFilesBuilder::inline_lookup`, on by default):
//! a plain regular file whose names are all cached is opened on the worker with
//! `openat2(RESOLVE_CACHED | RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`;
//! everything else goes to the helper thread as before. Every answer must be the one
//! the helper alone gives (status, body, type), request for request, and the counts
//! must show which path each took: the plain files on the worker, the rest (a
//! symlink inside the root, as the last name or as a directory on the way, one
//! leading out, `..`, a hidden name, a directory, a missing name, a file named as a
//! directory: `a.txt/`, `a.txt/.`) on the helper.

mod support;

use ringcore::http::files::lookup_counts;
use ringcore::http::{Limits, StaticFiles};
use std::path::PathBuf;
use support::http::{get, HttpClient};
use support::{for_each_backend, start_server};

struct Tree {
    dir: PathBuf,
    root: PathBuf,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let dir =
            std::env::temp_dir().join(format!("ringcore-inline-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join("a.txt"), b"file a\n").unwrap();
        std::fs::write(root.join("sub/b.html"), b"<p>b</p>\n").unwrap();
        std::fs::write(root.join("dir/index.html"), b"index\n").unwrap();
        std::fs::write(root.join(".hidden"), b"secret\n").unwrap();
        std::fs::write(dir.join("outside.txt"), b"outside\n").unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(dir.join("outside.txt"), root.join("out.txt")).unwrap();
        // Relative: an absolute target is refused by RESOLVE_BENEATH on its own.
        std::os::unix::fs::symlink("sub", root.join("lsub")).unwrap();
        Tree { dir, root }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Requests answered on the worker when inline lookups are on: plain regular files.
const PLAIN: &[&str] = &["/a.txt", "/sub/b.html", "/./a.txt", "/sub//b.html"];
/// Requests the helper answers either way.
const OTHERS: &[&str] = &[
    "/link.txt",
    "/lsub/b.html",
    "/out.txt",
    "/sub/../a.txt",
    "/.hidden",
    "/dir",
    "/dir/",
    "/missing.txt",
    "/sub/missing/x",
    "/a.txt/",
    "/a.txt/.",
];

/// Status, Content-Type and body of each request, in order, on one keep-alive client.
fn answers(addr: std::net::SocketAddr) -> Vec<(u16, Option<String>, Vec<u8>)> {
    let mut c = HttpClient::connect(addr);
    PLAIN
        .iter()
        .chain(OTHERS)
        .map(|target| {
            c.send(&get("GET", target, ""));
            let r = c.read_response(false);
            let ct = r.header("content-type").map(str::to_string);
            (r.status, ct, r.body)
        })
        .collect()
}

#[test]
fn inline_lookups_answer_as_the_helper_does() {
    for_each_backend(|backend| {
        let tree = Tree::new(&backend.to_string());
        let mut got = Vec::new();
        for inline in [false, true] {
            let factory = StaticFiles::builder(&tree.root)
                .limits(Limits::default())
                .inline_lookup(inline)
                .factory()
                .expect("root");
            let server = start_server(backend, |b| b, factory);
            let before = lookup_counts();
            got.push(answers(server.addr));
            let after = lookup_counts();
            let (worker, helper) = (
                after.on_worker - before.on_worker,
                after.on_helper - before.on_helper,
            );
            let total = (PLAIN.len() + OTHERS.len()) as u64;
            if inline {
                assert_eq!(
                    worker,
                    PLAIN.len() as u64,
                    "{backend}: plain files on the worker"
                );
                assert_eq!(
                    helper,
                    OTHERS.len() as u64,
                    "{backend}: the rest on the helper"
                );
            } else {
                assert_eq!((worker, helper), (0, total), "{backend}: all on the helper");
            }
            server.wait_counters("the client gone", |c| c.open_conns == 0);
            assert_eq!(server.stop().panics, 0);
        }
        assert_eq!(
            got[0], got[1],
            "{backend}: inline answers differ from the helper's"
        );
        let status: Vec<u16> = got[1].iter().map(|a| a.0).collect();
        assert_eq!(
            status,
            [200, 200, 200, 200, 200, 200, 403, 403, 404, 301, 200, 404, 404, 404, 404],
            "{backend}"
        );
        assert_eq!(got[1][0].2, b"file a\n");
        assert_eq!(
            got[1][4].2, b"file a\n",
            "{backend}: a symlink inside the root"
        );
    });
}
