//! Socket helpers shared by the abuse clients: connect from a chosen loopback source,
//! raw socket options, `/proc` readings of the server under test.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The `i`-th source address of `sources` (127.0.0.2, 127.0.0.3, ...); `None` with 0
/// sources (the kernel picks the source).
pub fn source(i: usize, sources: usize) -> Option<Ipv4Addr> {
    if sources == 0 {
        return None;
    }
    Some(Ipv4Addr::from(0x7f00_0002 + (i % sources) as u32))
}

fn set_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` outlives the call and its size is passed; `fd` is a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connects to `addr`, from `src` (port chosen at connect time) and with a receive
/// buffer of `rcvbuf` bytes when given, within `timeout`.
pub async fn connect(
    addr: SocketAddr,
    src: Option<Ipv4Addr>,
    rcvbuf: Option<u32>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    if let Some(b) = rcvbuf {
        s.set_recv_buffer_size(b)?;
    }
    if let Some(ip) = src {
        set_int(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            1,
        )?;
        s.bind(SocketAddr::V4(SocketAddrV4::new(ip, 0)))?;
    }
    let st = match tokio::time::timeout(timeout, s.connect(addr)).await {
        Ok(r) => r?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
    };
    st.set_nodelay(true)?;
    Ok(st)
}

/// Makes the next close send a RST (SO_LINGER with a zero timeout).
pub fn set_reset_on_close(s: &TcpStream) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` outlives the call and its size is passed; the socket is ours.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Number of open fds of process `pid` (`/proc/<pid>/fd`), `None` once it is gone.
pub fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// A short name for an I/O error, for outcome tallies.
pub fn kind(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused".into(),
        Some(libc::ECONNRESET) => "reset".into(),
        Some(libc::EPIPE) => "epipe".into(),
        Some(libc::ETIMEDOUT) => "timeout".into(),
        Some(libc::EADDRNOTAVAIL) => "eaddrnotavail".into(),
        Some(libc::EMFILE) => "emfile".into(),
        Some(n) => format!("errno{n}"),
        None if e.kind() == io::ErrorKind::TimedOut => "timeout".into(),
        None => format!("{:?}", e.kind()).to_lowercase(),
    }
}

/// One HTTP/1.1 GET for `path` (keep-alive unless `close`).
pub fn get(path: &str, close: bool) -> Vec<u8> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{conn}\r\n").into_bytes()
}

/// A parsed response head: status and Content-Length (when present), head length.
pub struct Head {
    pub status: u16,
    pub content_length: Option<usize>,
    pub head_len: usize,
}

/// Parses a response head at the start of `buf` (`None`: incomplete).
pub fn parse_head(buf: &[u8]) -> Option<Result<Head, ()>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(buf) {
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(Err(())),
        Ok(httparse::Status::Complete(n)) => {
            let cl = res
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok());
            Some(Ok(Head {
                status: res.code.unwrap_or(0),
                content_length: cl,
                head_len: n,
            }))
        }
    }
}

/// What reading one response off a keep-alive connection ended with.
pub enum Got {
    /// A complete response (status).
    Full(u16),
    /// EOF before any byte of a response.
    CleanEof,
    /// EOF or error after part of a response.
    Cut,
    /// An error before any byte (kind).
    Err(String),
}

/// Reads one response (Content-Length framed) from `s`, keeping what follows it in
/// `buf`.
pub async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Got {
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        if let Some(h) = parse_head(buf) {
            let Ok(h) = h else { return Got::Cut };
            let total = h.head_len + h.content_length.unwrap_or(0);
            if buf.len() >= total {
                buf.drain(..total);
                return Got::Full(h.status);
            }
        }
        match s.read(&mut tmp).await {
            Ok(0) if buf.is_empty() => return Got::CleanEof,
            Ok(0) => return Got::Cut,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if buf.is_empty() => return Got::Err(kind(&e)),
            Err(_) => return Got::Cut,
        }
    }
}

/// Sends `req` and reads one response within `timeout`.
pub async fn roundtrip(s: &mut TcpStream, req: &[u8], timeout: Duration) -> Got {
    let work = async {
        if let Err(e) = s.write_all(req).await {
            return Got::Err(kind(&e));
        }
        let mut buf = Vec::new();
        read_response(s, &mut buf).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Got::Err("timeout".into()))
}

/// Sends `msg` and reads back as many bytes within `timeout` (echo servers).
pub async fn echo_roundtrip(
    s: &mut TcpStream,
    msg: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let work = async {
        s.write_all(msg).await.map_err(|e| kind(&e))?;
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.map_err(|e| kind(&e))?;
        if back == msg {
            Ok(())
        } else {
            Err("mismatch".to_string())
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err("timeout".into()))
}

/// True once the peer closed or reset the connection (TCP state `CLOSE` or
/// `CLOSE_WAIT`, from `TCP_INFO`), whatever unread data is still buffered.
pub fn peer_closed(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: an all-zero tcp_info is valid; getsockopt writes at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket of the caller; `info`/`len` are valid pointers.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // 7 = TCP_CLOSE (reset), 8 = TCP_CLOSE_WAIT (FIN received).
    r == 0 && matches!(info.tcpi_state, 7 | 8)
}
