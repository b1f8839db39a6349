//! [`BackendKind`]: which I/O backend a runtime uses, as configured (a leaf: the
//! configuration names it, and [`backend`](crate::backend) acts on it).

use std::io;

/// Which I/O backend a runtime uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// io_uring, falling back to epoll (with one log line) when io_uring is blocked,
    /// missing or lacks an opcode.
    #[default]
    Auto,
    /// io_uring only; start-up fails with the reason if it is unavailable.
    Uring,
    /// Edge-triggered epoll.
    Epoll,
}

impl BackendKind {
    /// Parses `uring`, `io_uring`, `epoll` or `auto`.
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(BackendKind::Auto),
            "uring" | "io_uring" | "io-uring" => Some(BackendKind::Uring),
            "epoll" => Some(BackendKind::Epoll),
            _ => None,
        }
    }

    /// The value of `RINGCORE_BACKEND`, if set.
    ///
    /// # Errors
    /// `InvalidInput` if the variable is set to something else.
    pub fn from_env() -> io::Result<Option<BackendKind>> {
        match std::env::var("RINGCORE_BACKEND") {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => BackendKind::parse(&v).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("RINGCORE_BACKEND={v:?} is not one of uring, epoll, auto"),
                )
            }),
            Err(_) => Ok(None),
        }
    }

    /// `"io_uring"`, `"epoll"` or `"auto"`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Uring => "io_uring",
            BackendKind::Epoll => "epoll",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BackendKind::parse(s).ok_or_else(|| format!("{s:?} is not one of uring, epoll, auto"))
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
