//! A response sent while the request body is still arriving ([`BodyOut`]): the head
//! goes out first, then the body in `Transfer-Encoding: chunked` pieces (or, to an
//! HTTP/1.0 client, as raw bytes ended by closing the connection).

use super::response::reason_phrase;
use super::{DateCache, Reply};

/// The state of a streamed response, kept by the session between pieces.
#[derive(Debug, Default)]
pub(crate) struct OutState {
    /// Extra header fields, rendered as `Name: value\r\n`, until the head is sent.
    fields: Vec<u8>,
    /// The head was sent.
    pub(crate) started: bool,
}

impl OutState {
    pub(crate) fn clear(&mut self) {
        self.fields.clear();
        self.started = false;
    }
}

/// Writes a response while the request body is still being read, from
/// [`BodyHandler::on_body_out`](super::BodyHandler::on_body_out): [`start`](Self::start)
/// sends the head, each [`write`](Self::write) a piece of the body. The response then
/// ends when the request body does: what the handler puts in the body of the
/// [`Response`](super::Response) given to
/// [`on_end`](super::BodyHandler::on_end) is sent as the last piece (its status and
/// header fields are ignored: the head is gone).
///
/// To an HTTP/1.1 client the body goes out chunked and the connection stays open;
/// to an HTTP/1.0 client it goes out as it is and the connection closes after it.
/// Memory stays bounded: while the client does not read, the connection's output
/// high-water mark stops reading the request
/// ([`Conn::is_backed_up`](crate::Conn::is_backed_up)).
#[derive(Debug)]
pub struct BodyOut<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) state: &'a mut OutState,
    pub(crate) date: &'a DateCache,
    pub(crate) reply: Reply,
}

impl BodyOut<'_> {
    /// Adds a header field to the head (before [`start`](Self::start); ignored
    /// after, and with the same checks as [`Response::header`](super::Response::header)).
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let name_ok = !name.is_empty() && name.bytes().all(super::fields::is_token);
        let value_ok = !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
        if !self.state.started && name_ok && value_ok {
            let f = &mut self.state.fields;
            f.extend_from_slice(name.as_bytes());
            f.extend_from_slice(b": ");
            f.extend_from_slice(value);
            f.extend_from_slice(b"\r\n");
        }
        self
    }

    /// Sends the head: `status` (must be 200..=599 but not 204 or 304, which carry
    /// no body; others are sent as 200), `content_type`, the fields added with
    /// [`header`](Self::header). Later calls do nothing.
    pub fn start(&mut self, status: u16, content_type: &str) -> &mut Self {
        if self.state.started {
            return self;
        }
        let status = if (200..600).contains(&status) && status != 204 && status != 304 {
            status
        } else {
            200
        };
        self.state.started = true;
        let (chunked, keep_alive) = (self.chunked(), self.keep_alive());
        let out = &mut *self.out;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason_phrase(status).as_bytes());
        out.extend_from_slice(b"\r\nServer: ringcore\r\nDate: ");
        out.extend_from_slice(self.date.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        if chunked {
            out.extend_from_slice(b"\r\nTransfer-Encoding: chunked");
        }
        if !keep_alive {
            out.extend_from_slice(b"\r\nConnection: close");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.state.fields);
        out.extend_from_slice(b"\r\n");
        self.state.fields.clear();
        self
    }

    /// Sends `data` as the next piece of the body (starting a `200`
    /// `application/octet-stream` response first if [`start`](Self::start) was
    /// not called). Nothing is sent for an empty piece or to a `HEAD` request.
    pub fn write(&mut self, data: &[u8]) -> &mut Self {
        self.start(200, "application/octet-stream");
        if data.is_empty() || self.reply.head {
            return self;
        }
        if self.chunked() {
            self.out
                .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            self.out.extend_from_slice(data);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.out.extend_from_slice(data);
        }
        self
    }

    /// Whether the head was sent.
    pub fn is_started(&self) -> bool {
        self.state.started
    }

    /// Ends a started response with `last` as its final piece; returns whether the
    /// connection stays open.
    pub(crate) fn finish(&mut self, last: &[u8]) -> bool {
        self.write(last);
        if self.chunked() && !self.reply.head {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        self.state.clear();
        self.keep_alive()
    }

    /// HTTP/1.1 gets chunks; HTTP/1.0 knows no chunked coding.
    fn chunked(&self) -> bool {
        self.reply.minor >= 1
    }

    /// An HTTP/1.0 body without a length ends with the connection.
    fn keep_alive(&self) -> bool {
        self.reply.keep_alive && self.chunked()
    }
}
