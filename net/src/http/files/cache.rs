//! The open-file cache (nginx `open_file_cache`), per worker, off by default.
//!
//! A lookup (resolve, open, `fstat`) runs on the worker's helper thread: two thread
//! hand-offs per request, which costs small files most of their throughput. With the
//! cache on, a successful lookup is kept (the open file, its metadata) for `valid`,
//! keyed by the server, the request path and the accepted encodings; a request within
//! that window is answered on the worker at once from a `dup` of the cached
//! descriptor. After `valid` the next request for the path goes through the helper
//! again (re-resolving, re-opening) and refreshes the entry, so nothing on the worker
//! touches the file system. Bounded: at most `entries` per worker and server; a full
//! cache drops its oldest entry.
//!
//! The price, as with nginx: for up to `valid` after a file changes, answers may still
//! describe the old file. A file replaced by rename (atomic deploys) is served whole
//! in its old version until revalidation; a file rewritten in place may be served with
//! its old length and tag (a file that shrank aborts the connection, as it would
//! without the cache when it shrinks mid-send). Misses (404, 403) are not cached.

use super::encoding::Encoding;
use super::resolve::Found;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Cache settings of one server.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Most entries per worker.
    pub entries: usize,
    /// How long an entry answers without a new lookup.
    pub valid: Duration,
}

/// What a cached lookup is found by: the server (its unique id), the request path and
/// the client's accepted encodings in order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    server: u64,
    path: String,
    accept: Vec<Encoding>,
}

impl Key {
    /// The key of a request.
    pub fn new(server: u64, path: &str, accept: &[Encoding]) -> Key {
        Key {
            server,
            path: path.to_string(),
            accept: accept.to_vec(),
        }
    }
}

struct Entry {
    path: PathBuf,
    file: File,
    meta: Metadata,
    encoding: Option<Encoding>,
    until: Instant,
}

thread_local! {
    static CACHE: RefCell<HashMap<Key, Entry>> = RefCell::new(HashMap::new());
}

/// A cached lookup still valid at `now`, with its own descriptor; `None` on a miss,
/// an expired entry, or when the descriptor cannot be duplicated (`EMFILE`).
pub fn get(key: &Key, now: Instant) -> Option<Found> {
    CACHE.with(|c| {
        let c = c.borrow();
        let e = c.get(key).filter(|e| e.until > now)?;
        let file = e.file.try_clone().ok()?;
        Some(Found::File {
            path: e.path.clone(),
            file,
            meta: e.meta.clone(),
            encoding: e.encoding,
        })
    })
}

/// Remembers a successful lookup (a `dup` of its descriptor) until `now + valid`.
pub fn put(key: Key, found: &Found, cfg: CacheConfig, now: Instant) {
    let Found::File {
        path,
        file,
        meta,
        encoding,
    } = found
    else {
        return;
    };
    let Ok(file) = file.try_clone() else { return };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let server = key.server;
        let mine = || c.keys().filter(|k| k.server == server);
        if !c.contains_key(&key) && mine().count() >= cfg.entries {
            // Full: drop the entry of this server that expires first.
            let oldest = c
                .iter()
                .filter(|(k, _)| k.server == server)
                .min_by_key(|(_, e)| e.until)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    c.remove(&k);
                }
                None => return,
            }
        }
        c.insert(
            key,
            Entry {
                path: path.clone(),
                file,
                meta: meta.clone(),
                encoding: *encoding,
                until: now + cfg.valid,
            },
        );
    });
}

/// Entries this worker holds for `server`.
#[cfg(test)]
fn len(server: u64) -> usize {
    CACHE.with(|c| c.borrow().keys().filter(|k| k.server == server).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(path: &std::path::Path) -> Found {
        let file = File::open(path).unwrap();
        let meta = file.metadata().unwrap();
        Found::File {
            path: path.to_path_buf(),
            file,
            meta,
            encoding: None,
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // opens a file
    fn entries_expire_and_are_bounded() {
        let p = std::env::temp_dir().join(format!("ringcore-ofc-{}", std::process::id()));
        std::fs::write(&p, b"x").unwrap();
        let cfg = CacheConfig {
            entries: 2,
            valid: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        let server = u64::MAX - 7;
        let key = |n: &str| Key::new(server, n, &[]);
        assert!(get(&key("/a"), t0).is_none());
        put(key("/a"), &found(&p), cfg, t0);
        assert!(matches!(
            get(&key("/a"), t0 + Duration::from_secs(4)),
            Some(Found::File { .. })
        ));
        assert!(
            get(&key("/a"), t0 + Duration::from_secs(5)).is_none(),
            "expired"
        );
        assert!(
            get(&Key::new(server, "/a", &[Encoding::Gzip]), t0).is_none(),
            "per encoding"
        );
        assert!(
            get(&Key::new(server + 1, "/a", &[]), t0).is_none(),
            "per server"
        );
        put(key("/b"), &found(&p), cfg, t0 + Duration::from_secs(1));
        put(key("/c"), &found(&p), cfg, t0 + Duration::from_secs(2));
        assert_eq!(len(server), 2, "bounded");
        assert!(get(&key("/a"), t0).is_none(), "the oldest went");
        put(key("/x"), &Found::Status(404), cfg, t0);
        assert!(get(&key("/x"), t0).is_none(), "misses are not cached");
        let _ = std::fs::remove_file(&p);
    }
}
