//! From a request path to what to answer: path safety, hidden files, directories
//! (redirect, index, listing), precompressed siblings, and the open itself.
//!
//! Everything here may block on a slow file system, so [`lookup`] runs on the
//! worker's helper thread, never on the worker.

use super::encoding::Encoding;
use super::listing;
use super::Config;
use crate::http::percent::{decode_segments, DecodeError};
use std::fs::{File, Metadata};
use std::path::{Component, Path, PathBuf};

/// Percent-decodes a request path segment by segment (an encoded slash, `%2F`, is
/// never a separator); `None` for bad escapes, NUL, bytes that are not UTF-8, a
/// backslash or an encoded slash. [`resolve_target`] says which status each gets.
pub fn decode_path(p: &str) -> Option<String> {
    decode_checked(p).ok().map(|d| d.into_owned())
}

/// [`decode_path`] with the status to answer: 400 for a malformed escape, a NUL or
/// bytes that are not UTF-8 (the request is malformed); 404 for an encoded slash (no
/// name holds `/`); 403 for a backslash (refused, as `..`).
fn decode_checked(p: &str) -> Result<std::borrow::Cow<'_, str>, u16> {
    let decoded = decode_segments(p).map_err(|e| match e {
        DecodeError::EncodedSlash => 404u16,
        _ => 400,
    })?;
    if decoded.contains('\\') {
        return Err(403);
    }
    Ok(decoded)
}

/// Whether any segment of `path` is hidden (a name starting with `.`; `.` and `..`
/// themselves are handled as path components, not here).
fn has_hidden(path: &Path) -> bool {
    path.components().any(|c| match c {
        Component::Normal(s) => s.as_encoded_bytes().first() == Some(&b'.'),
        _ => false,
    })
}

/// What a request path names under the root.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// A path that is not a directory (it exists; its type is checked at open).
    File(PathBuf),
    /// A directory.
    Dir(PathBuf),
}

/// Resolves a request path under `root` (canonical). The path is percent-decoded
/// per segment first (`%2F` is part of a name, never a separator): `Err(400)` for a
/// malformed escape, an encoded NUL or bytes that are not UTF-8; `Err(403)` for
/// escapes (a `..` segment, decoded or not, a backslash, a symlink leading outside);
/// `Err(404)` if missing (a segment holding an encoded slash names nothing) or
/// hidden (a segment starting with `.`, in the request or in the resolved path)
/// unless `allow_hidden`.
pub fn resolve_target(root: &Path, target_path: &str, allow_hidden: bool) -> Result<Target, u16> {
    let decoded = decode_checked(target_path)?;
    let rel = Path::new(decoded.trim_start_matches('/'));
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(403),
        }
    }
    if !allow_hidden && has_hidden(rel) {
        return Err(404);
    }
    let canon = root.join(rel).canonicalize().map_err(|_| 404u16)?;
    let Ok(inside) = canon.strip_prefix(root) else {
        return Err(403);
    };
    // A symlink with a plain name that leads to a hidden file or directory.
    if !allow_hidden && has_hidden(inside) {
        return Err(404);
    }
    if canon.is_dir() {
        Ok(Target::Dir(canon))
    } else {
        Ok(Target::File(canon))
    }
}

/// Resolves a request path to a file under `root` as served by default (no hidden
/// files, no listing): a directory means its `index.html`, or 403 without one.
/// See [`resolve_target`] for the errors.
pub fn resolve(root: &Path, target_path: &str) -> Result<PathBuf, u16> {
    match resolve_target(root, target_path, false)? {
        Target::File(p) => Ok(p),
        Target::Dir(_) => {
            let index = format!("{}/{}", target_path.trim_end_matches('/'), super::INDEX);
            match resolve_target(root, &index, false) {
                Ok(Target::File(p)) if p.is_file() => Ok(p),
                _ => Err(403),
            }
        }
    }
}

/// Opens `path` for reading if it is a regular file; `None` otherwise (missing,
/// unreadable, or not a regular file: nginx answers 404 to those too).
///
/// `O_NONBLOCK` keeps the open itself from blocking on a FIFO (a blocking open of a
/// FIFO waits for a writer, forever, holding the worker); the type is then checked on
/// the opened fd with `fstat`, so there is no window between the check and the use.
/// `O_NOFOLLOW`: `path` is canonical (no symlink in it), so a symlink found here was
/// swapped in after [`resolve`] checked the path and is refused. `O_CLOEXEC` is added
/// by the standard library. On a regular file `O_NONBLOCK` changes nothing.
pub fn open_regular(path: &Path) -> Option<(File, Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    meta.file_type().is_file().then_some((file, meta))
}

/// What the helper thread found for a request.
#[derive(Debug)]
pub(super) enum Found {
    /// A regular file to serve: the path its type is named after (without a
    /// compression suffix), the open file, its metadata, and the coding of its
    /// bytes when a precompressed sibling was chosen.
    File {
        /// The path the content type comes from.
        path: PathBuf,
        /// The open file (the sibling, if `encoding` is set).
        file: File,
        /// Its metadata.
        meta: Metadata,
        /// `Some` when `file` is `<path>.gz` or `<path>.br`.
        encoding: Option<Encoding>,
    },
    /// A directory listing, rendered.
    Listing(Vec<u8>),
    /// A directory asked for without its trailing slash: 301 to this location.
    Redirect(String),
    /// Answer with this status (403, 404).
    Status(u16),
}

/// What [`lookup`] needs from the request.
#[derive(Debug)]
pub(super) struct Ask {
    /// The request path (still percent-encoded).
    pub path: String,
    /// The query string, kept on a redirect.
    pub query: Option<String>,
    /// Codings the client accepts, best first (empty unless `gzip_static`).
    pub accept: Vec<Encoding>,
}

/// Resolves and opens what `ask` names under the configured root. Runs on the
/// worker's helper thread: every syscall here may block.
pub(super) fn lookup(cfg: &Config, ask: &Ask) -> Found {
    let (file, opened) = match resolve_target(&cfg.root, &ask.path, cfg.allow_hidden) {
        Err(status) => return Found::Status(status),
        Ok(Target::File(p)) => {
            let opened = open_regular(&p);
            (p, opened)
        }
        Ok(Target::Dir(dir)) => {
            if !ask.path.ends_with('/') {
                return Found::Redirect(location(&ask.path, ask.query.as_deref()));
            }
            // The index goes through the same checks as any request path; one that is
            // not a servable regular file (missing, hidden, a FIFO, a symlink leading
            // out) leaves a directory without an index.
            let index = format!("{}{}", ask.path, super::INDEX);
            let index = match resolve_target(&cfg.root, &index, cfg.allow_hidden) {
                Ok(Target::File(p)) => open_regular(&p).map(|o| (p, o)),
                _ => None,
            };
            match index {
                Some((p, o)) => (p, Some(o)),
                None if cfg.autoindex => {
                    let shown = decode_path(&ask.path).unwrap_or_default();
                    return match listing::render(&dir, &shown, cfg.allow_hidden) {
                        Ok(html) => Found::Listing(html),
                        Err(e) => {
                            tracing::debug!(dir = %dir.display(), error = %e, "autoindex: cannot read the directory");
                            Found::Status(403)
                        }
                    };
                }
                None => return Found::Status(403),
            }
        }
    };
    let Some((plain, meta)) = opened else {
        return Found::Status(404);
    };
    for &enc in &ask.accept {
        let mut sibling = file.clone().into_os_string();
        sibling.push(enc.suffix());
        if let Some((f, m)) = open_regular(Path::new(&sibling)) {
            return Found::File {
                path: file,
                file: f,
                meta: m,
                encoding: Some(enc),
            };
        }
    }
    Found::File {
        path: file,
        file: plain,
        meta,
        encoding: None,
    }
}

/// The `Location` of a directory's redirect: its path with a slash appended, the
/// query kept. Leading slashes collapse to one, so `//host/dir` cannot turn into a
/// protocol-relative URL pointing at another host.
pub fn location(path: &str, query: Option<&str>) -> String {
    let mut loc = String::with_capacity(path.len() + 2 + query.map_or(0, str::len));
    loc.push('/');
    loc.push_str(path.trim_start_matches('/'));
    if !loc.ends_with('/') {
        loc.push('/');
    }
    if let Some(q) = query {
        loc.push('?');
        loc.push_str(q);
    }
    loc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // mkdir, symlink, realpath: syscalls
    fn traversal_and_hidden_are_refused() {
        let dir = std::env::temp_dir().join(format!("ringcore-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub/.git")).unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"a").unwrap();
        std::fs::write(dir.join("sub/.env"), b"x").unwrap();
        std::fs::write(dir.join("sub/.git/config"), b"x").unwrap();
        let root = dir.join("sub").canonicalize().unwrap();
        std::fs::write(dir.join("secret"), b"s").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("link"));
        let _ = std::os::unix::fs::symlink(root.join(".env"), root.join("env"));
        assert!(resolve(&root, "/a.txt").is_ok());
        assert_eq!(resolve(&root, "/../secret"), Err(403));
        assert_eq!(resolve(&root, "/%2e%2e/secret"), Err(403));
        assert_eq!(resolve(&root, "/%2E%2E/secret"), Err(403));
        assert_eq!(
            resolve(&root, "/%2E%2E%2Fsecret"),
            Err(404),
            "no name holds '/'"
        );
        assert_eq!(resolve(&root, "/a.txt%zz"), Err(400));
        assert_eq!(resolve(&root, "/a%5C.txt"), Err(403), "backslash");
        assert_eq!(resolve(&root, "/link"), Err(403));
        assert_eq!(resolve(&root, "/a.txt%00"), Err(400));
        assert_eq!(resolve(&root, "/missing"), Err(404));
        assert_eq!(resolve(&root, "/.env"), Err(404));
        assert_eq!(resolve(&root, "/%2eenv"), Err(404));
        assert_eq!(resolve(&root, "/.git/config"), Err(404));
        assert_eq!(resolve(&root, "/env"), Err(404), "symlink to a dotfile");
        assert!(resolve_target(&root, "/.env", true).is_ok());
        assert!(
            resolve_target(&root, "/./a.txt", false).is_ok(),
            "`.` is no name"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn redirect_location() {
        assert_eq!(location("/dir", None), "/dir/");
        assert_eq!(location("/a%20b", Some("x=1&y")), "/a%20b/?x=1&y");
        assert_eq!(location("//evil.example/dir", None), "/evil.example/dir/");
        // Found by fuzz/fuzz_targets/static_files.rs: an empty path gave `//`.
        assert_eq!(location("", Some("q")), "/?q");
        assert_eq!(location("///", None), "/");
    }
}
