//! Errors with context that keep their errno.
//!
//! `io::Error::new(kind, message)` loses `raw_os_error()`; backend selection needs the
//! errno (EPERM, ENOSYS, EINVAL, ENOMEM mean "io_uring is not available here"), so
//! context is added with [`context`] and read back with [`errno`].

use std::fmt;
use std::io;

/// An OS error with a message that says what was being done and what to do.
#[derive(Debug)]
pub struct OsContext {
    errno: Option<i32>,
    message: String,
}

impl fmt::Display for OsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OsContext {}

/// `e` with `message` (which should include `e`'s text), keeping its kind and errno.
pub fn context(e: &io::Error, message: String) -> io::Error {
    io::Error::new(
        e.kind(),
        OsContext {
            errno: errno(e),
            message,
        },
    )
}

/// The errno of `e`, also through [`context`] wrappers.
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()?
            .downcast_ref::<OsContext>()
            .and_then(|c| c.errno)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_survives_context() {
        let e = io::Error::from_raw_os_error(libc::EINVAL);
        let w = context(&e, format!("setup failed: {e}"));
        assert_eq!(errno(&w), Some(libc::EINVAL));
        let w2 = context(&w, format!("outer: {w}"));
        assert_eq!(errno(&w2), Some(libc::EINVAL));
        assert!(w2.to_string().contains("outer: setup failed"));
        assert_eq!(errno(&io::Error::other("x")), None);
    }
}
