//! The per-connection loop: parse pipelined requests, answer each, stop on close.

use super::{write_error, DateCache, Limits, Request, RequestParser, Response, Router, Status};

/// What [`Session::on_data`] did with the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used by complete requests; drop them from the buffer.
    /// Any rest is the start of a request: keep it, and keep (or arm) the header
    /// deadline while it is non-empty and the parser is not in a body.
    pub consumed: usize,
    /// Send what was written, then close the connection (a request without
    /// keep-alive, the per-connection request limit, or a codec error).
    pub close: bool,
}

/// An HTTP/1.1 server connection without the connection: a [`RequestParser`] plus
/// a reusable [`Response`].
///
/// The connection handler calls [`Session::on_data`] with its unconsumed bytes
/// whenever more arrive, sends what was appended to `out`, drops
/// [`Progress::consumed`] bytes, and closes once `close` is set.
#[derive(Debug)]
pub struct Session {
    parser: RequestParser,
    response: Response,
}

impl Session {
    /// A session enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Session {
            parser: RequestParser::new(limits),
            response: Response::new(),
        }
    }

    /// The parser, e.g. for [`RequestParser::limits`] or [`RequestParser::in_body`].
    pub fn parser(&self) -> &RequestParser {
        &self.parser
    }

    /// Answers every complete request at the start of `data` through `router`,
    /// appending the responses to `out` (and `100 Continue` when a client sent
    /// `Expect: 100-continue` and waits for it).
    pub fn on_data(
        &mut self,
        data: &[u8],
        router: &Router,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Progress {
        self.serve(data, date, out, |req, res, date, out| {
            router.serve(req, res, date, out)
        })
    }

    /// Like [`Session::on_data`], with any function as the handler. It gets a
    /// cleared `200 OK` response to fill in.
    pub fn on_data_with<F>(
        &mut self,
        data: &[u8],
        date: &DateCache,
        out: &mut Vec<u8>,
        mut handler: F,
    ) -> Progress
    where
        F: FnMut(&Request<'_>, &mut Response),
    {
        self.serve(data, date, out, |req, res, date, out| {
            res.clear();
            handler(req, res);
            res.write_to(out, date, req.reply())
        })
    }

    /// The loop behind both: `respond` appends the response to a request to `out`
    /// (using the session's `Response` if it likes) and returns whether the
    /// connection stays open.
    fn serve<F>(
        &mut self,
        data: &[u8],
        date: &DateCache,
        out: &mut Vec<u8>,
        mut respond: F,
    ) -> Progress
    where
        F: FnMut(&Request<'_>, &mut Response, &DateCache, &mut Vec<u8>) -> bool,
    {
        let mut consumed = 0;
        loop {
            match self.parser.parse(&data[consumed..]) {
                Ok(Status::Partial) => {
                    if self.parser.take_expect_continue() {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    return Progress {
                        consumed,
                        close: false,
                    };
                }
                Ok(Status::Complete {
                    request,
                    consumed: used,
                }) => {
                    consumed += used;
                    if !respond(&request, &mut self.response, date, out) {
                        return Progress {
                            consumed,
                            close: true,
                        };
                    }
                }
                Err(error) => {
                    write_error(out, date, &error);
                    return Progress {
                        consumed: data.len(),
                        close: true,
                    };
                }
            }
        }
    }
}
