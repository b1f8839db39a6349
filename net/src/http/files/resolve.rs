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

/// Lookups answered on the worker ([`lookup_cached`]) and on the helper thread
/// ([`lookup`]), process-wide.
static ON_WORKER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ON_HELPER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many file lookups every [`StaticFiles`](super::StaticFiles) server of this
/// process answered on its worker (every path component cached, see
/// [`StaticFilesBuilder::inline_lookup`](super::StaticFilesBuilder::inline_lookup))
/// and on the worker's helper thread, since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LookupCounts {
    /// Answered on the worker without blocking.
    pub on_worker: u64,
    /// Handed to the helper thread.
    pub on_helper: u64,
}

/// A snapshot of [`LookupCounts`].
pub fn lookup_counts() -> LookupCounts {
    use std::sync::atomic::Ordering::Relaxed;
    LookupCounts {
        on_worker: ON_WORKER.load(Relaxed),
        on_helper: ON_HELPER.load(Relaxed),
    }
}

/// Counts a lookup handed to the helper thread.
pub(super) fn count_helper_lookup() {
    ON_HELPER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// File systems whose opens and attribute reads may go to the network or to a
/// user-space daemon even when every name is cached: the worker never looks up there.
const REMOTE_FS: &[i64] = &[
    0x6969,                 // NFS
    0x517b,                 // SMB
    0xff53_4d42_u32 as i64, // CIFS
    0xfe53_4d42_u32 as i64, // SMB2
    0x6573_5546,            // FUSE
    0x00c3_6400,            // Ceph
    0x5346_414f,            // AFS
    0x0102_1997,            // 9P
    0x0bd0_0bd0,            // Lustre
    0x4750_4653,            // GPFS
];

/// The root directory for lookups on the worker: an `O_PATH` descriptor, or `None`
/// when they cannot be done without blocking here: the root is on a network or FUSE
/// file system, or the kernel lacks `openat2` with `RESOLVE_CACHED` (5.12), or a
/// seccomp filter refuses it (probed once, on the root itself).
pub(super) fn inline_root(root: &Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(root)
        .ok()?;
    let fs = nix::sys::statfs::fstatfs(&dir).ok()?;
    if REMOTE_FS.contains(&(fs.filesystem_type().0 as i64)) {
        tracing::debug!(root = %root.display(), "file lookups stay on the helper thread (network or FUSE file system)");
        return None;
    }
    match openat2_cached(&dir, c".", libc::O_PATH | libc::O_DIRECTORY) {
        Ok(_) => Some(dir.into()),
        Err(e) => {
            tracing::debug!(error = %e, "file lookups stay on the helper thread (no openat2 with RESOLVE_CACHED)");
            None
        }
    }
}

/// `openat2(dir, path, flags)` confined under `dir` and to names the kernel has
/// cached: `RESOLVE_CACHED` (`EAGAIN` where a lookup would need I/O),
/// `RESOLVE_BENEATH` (no escape), `RESOLVE_NO_SYMLINKS` / `RESOLVE_NO_MAGICLINKS`
/// (`ELOOP` at any symlink: those keep the helper's canonicalising rules) and
/// `RESOLVE_NO_XDEV` (`EXDEV` at a mount point: the path stays on the probed file
/// system).
fn openat2_cached(
    dir: &impl std::os::fd::AsRawFd,
    path: &std::ffi::CStr,
    flags: libc::c_int,
) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    /// The kernel's `struct open_how` (libc's is non-exhaustive): three u64s.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_CACHED
            | libc::RESOLVE_BENEATH
            | libc::RESOLVE_NO_SYMLINKS
            | libc::RESOLVE_NO_MAGICLINKS
            | libc::RESOLVE_NO_XDEV,
    };
    // SAFETY: `path` is a NUL-terminated string and `how` a live `open_how` whose size
    // we pass; the kernel reads both and writes nothing of ours.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd as libc::c_int) })
}

/// The lookup of a plain regular file, done on the worker when it cannot block:
/// every path component is in the kernel's dentry cache, no symlink is on the way,
/// no mount point is crossed (see [`openat2_cached`]), and the root is on a local
/// file system ([`inline_root`]). Then the open (`O_NONBLOCK | O_NOFOLLOW`) and its
/// `fstat` touch only in-memory kernel state, as io_uring's own nonblocking open
/// assumes. The answer is the one [`lookup`] would give for such a path. `None`
/// hands the request to the helper thread: anything else (a directory, a symlink, a
/// name not cached, a hidden name, `gzip_static` siblings, any error).
pub(super) fn lookup_cached(cfg: &Config, ask: &Ask) -> Option<Found> {
    let root = cfg.inline_root.as_ref()?;
    if !ask.accept.is_empty() {
        return None; // precompressed siblings: the helper chooses among them
    }
    let decoded = decode_checked(&ask.path).ok()?;
    // The kernel walks the name as the request gave it (so `a.txt/` and `a.txt/.`
    // fail with ENOTDIR, as the helper's canonicalisation does); `rel` is its
    // normalised form, for the checks and the content type.
    let given = decoded.trim_start_matches('/');
    let mut rel = PathBuf::new();
    for c in Path::new(given).components() {
        match c {
            Component::Normal(s) => rel.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if rel.as_os_str().is_empty() || (!cfg.allow_hidden && has_hidden(&rel)) {
        return None;
    }
    let name = std::ffi::CString::new(given.as_bytes()).ok()?;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW;
    let file = openat2_cached(root, &name, flags).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() {
        return None; // a directory (redirect, index, listing) or a special file
    }
    ON_WORKER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(Found::File {
        path: cfg.root.join(rel),
        file,
        meta,
        encoding: None,
    })
}
