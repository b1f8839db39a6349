//! [`RequestParser::parse_event`]: the parser with bodies in pieces. The head comes
//! as one event, then the body as it arrives, so the caller drops body bytes as soon
//! as it has used them instead of holding the whole body.

use super::chunked::{Chunked, ChunkedDecoder};
use super::parse::{Framing, Head};
use super::request::Request;
use super::{Error, RequestParser};

/// Where a body read by events stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyState {
    /// No body being read.
    Off,
    /// This many `Content-Length` bytes are still to come.
    Length(u64),
    /// A chunked body is being decoded.
    Chunked,
    /// The body is complete; the next call reports [`Event::End`].
    Ended,
}

/// One step of [`RequestParser::parse_event`]. `consumed` counts bytes at the start
/// of the input that the caller drops before the next call.
#[derive(Debug)]
pub enum Event<'a> {
    /// Nothing more can be decided without more bytes (`consumed` is 0).
    Partial,
    /// A complete request without a body.
    Request {
        /// The request.
        request: Request<'a>,
        /// Bytes it used.
        consumed: usize,
    },
    /// The head of a request whose body follows as [`Event::Body`] pieces and one
    /// [`Event::End`]. Its [`Request::body`] is empty.
    Head {
        /// The request head.
        request: Request<'a>,
        /// Bytes of the head.
        consumed: usize,
        /// The declared `Content-Length`; `None` for a chunked body.
        length: Option<u64>,
    },
    /// A piece of the body, chunked coding removed (`data` may be empty when only
    /// chunk framing was consumed).
    Body {
        /// The piece.
        data: &'a [u8],
        /// Wire bytes used (the piece plus any chunk framing).
        consumed: usize,
    },
    /// The body is complete (trailers checked and dropped); the request is done.
    End {
        /// Wire bytes used.
        consumed: usize,
    },
}

impl RequestParser {
    /// Parses the next step at the start of `buf` (the unconsumed bytes), giving a
    /// request body in pieces: after [`Event::Head`] come [`Event::Body`] events and
    /// one [`Event::End`]. Drop `consumed` bytes after every event. Do not mix with
    /// [`parse`](Self::parse) on one connection.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse); after an error the connection must be closed.
    pub fn parse_event<'a>(&'a mut self, buf: &'a [u8]) -> Result<Event<'a>, Error> {
        match self.stream {
            BodyState::Off => self.event_head(buf),
            BodyState::Ended => Ok(self.event_end(0)),
            BodyState::Length(left) => {
                if left == 0 {
                    return Ok(self.event_end(0));
                }
                if buf.is_empty() {
                    return Ok(Event::Partial);
                }
                let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let left = left - take as u64;
                self.stream = if left == 0 {
                    BodyState::Ended
                } else {
                    BodyState::Length(left)
                };
                Ok(Event::Body {
                    data: &buf[..take],
                    consumed: take,
                })
            }
            BodyState::Chunked => {
                self.body.clear();
                let fed = self.chunked.feed(buf, &mut self.body, &self.limits);
                let status = match fed {
                    Ok(s) => s,
                    Err(e) => {
                        self.reset_body();
                        return Err(e);
                    }
                };
                let consumed = self.chunked.take_pos();
                if let Chunked::Complete(_) = status {
                    self.stream = BodyState::Ended;
                } else if consumed == 0 {
                    return Ok(Event::Partial);
                }
                Ok(Event::Body {
                    data: &self.body,
                    consumed,
                })
            }
        }
    }

    /// The request head at the start of `buf`, if complete.
    fn event_head<'a>(&'a mut self, buf: &'a [u8]) -> Result<Event<'a>, Error> {
        let Some((head, line)) = self.parse_head(buf)? else {
            return Ok(Event::Partial);
        };
        if head.framing == Framing::None {
            return Ok(match self.complete(buf, head, Some(line), Some(&[]), 0) {
                super::Status::Complete { request, consumed } => {
                    Event::Request { request, consumed }
                }
                super::Status::Partial => Event::Partial,
            });
        }
        self.stream = match head.framing {
            Framing::Length(n) => BodyState::Length(n as u64),
            _ => {
                self.chunked = ChunkedDecoder::new();
                BodyState::Chunked
            }
        };
        self.head = Some(head);
        self.continue_pending = head.expect_continue;
        let keep_alive = head.keep_alive
            && self.served.saturating_add(1) < self.limits.max_requests_per_connection;
        let request = Request {
            method: line.0,
            target: line.1,
            minor: head.minor,
            head: &buf[..head.len],
            spans: &self.spans,
            body: &[],
            keep_alive,
            params: &[],
            raw_params: &[],
        };
        let length = match head.framing {
            Framing::Length(n) => Some(n as u64),
            _ => None,
        };
        Ok(Event::Head {
            request,
            consumed: head.len,
            length,
        })
    }

    fn event_end<'a>(&mut self, consumed: usize) -> Event<'a> {
        self.served = self.served.saturating_add(1);
        self.done = self.head.take().map(|mut h| {
            h.keep_alive &= self.served < self.limits.max_requests_per_connection;
            h
        });
        self.reset_body();
        Event::End { consumed }
    }

    fn reset_body(&mut self) {
        self.stream = BodyState::Off;
        self.head = None;
        self.continue_pending = false;
    }

    /// The request whose [`Event::End`] was just returned, rebuilt over a copy of
    /// its head bytes (`head`, as [`Event::Head`] lent them) and `body`.
    pub fn ended_request<'a>(&'a self, head: &'a [u8], body: &'a [u8]) -> Option<Request<'a>> {
        let h: Head = self.done?;
        let text = |(start, end): (usize, usize)| {
            head.get(start..end)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("")
        };
        Some(Request {
            method: text(h.method),
            target: text(h.target),
            minor: h.minor,
            head: head.get(..h.len)?,
            spans: &self.spans,
            body,
            keep_alive: h.keep_alive,
            params: &[],
            raw_params: &[],
        })
    }
}
