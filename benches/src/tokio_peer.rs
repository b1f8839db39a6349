//! What the tokio peers (`peer-tokio`, `peer-tokio-tls`) share: the `current_thread`
//! accept loop and the hand-rolled HTTP plaintext loop, generic over the stream so the
//! TLS peer runs the same loop over a tokio-rustls stream.

use crate::{split_requests, PlaintextCache};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Most bytes of unanswered request data kept before the connection is dropped (no
/// complete head in 1 MiB: not a client of ours).
pub const MAX_PENDING: usize = 1 << 20;

/// Runs a `current_thread` runtime that accepts on `addr` (logging as `name`) and
/// hands every accepted socket (`TCP_NODELAY` set) to `on_conn`, which spawns its task.
pub fn serve(
    name: &str,
    addr: SocketAddr,
    mut on_conn: impl FnMut(TcpStream),
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("{name}: listening on {}", listener.local_addr()?);
        loop {
            let (s, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    eprintln!("{name}: accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = s.set_nodelay(true);
            on_conn(s);
        }
    })
}

/// Answers every `\r\n\r\n`-terminated request on `s` with the plaintext response
/// (`cache` renders it), all responses to one read in one write. Returns `Ok` at the
/// peer's end of stream; an error on a failed read or write or past [`MAX_PENDING`].
pub async fn http_plaintext<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    mut cache: impl FnMut(&mut dyn FnMut(&mut PlaintextCache)),
) -> io::Result<()> {
    let mut inbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        inbuf.extend_from_slice(&chunk[..n]);
        let (reqs, used) = split_requests(&inbuf);
        if reqs > 0 {
            out.clear();
            cache(&mut |c| {
                let r = c.refresh();
                for _ in 0..reqs {
                    out.extend_from_slice(r);
                }
            });
            inbuf.drain(..used);
            s.write_all(&out).await?;
        }
        if inbuf.len() > MAX_PENDING {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no complete request head in 1 MiB",
            ));
        }
    }
}
