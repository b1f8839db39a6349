//! The parsed request: borrowed views into the connection's bytes.

use super::response::Reply;

/// Where one header field sits in the request head, as byte offsets.
///
/// INVARIANT: both ranges lie inside the head they were parsed from; the name is an
/// HTTP token (ASCII), checked by `httparse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSpan {
    pub(crate) name: (usize, usize),
    pub(crate) value: (usize, usize),
}

/// One complete request, borrowed from the bytes given to
/// [`RequestParser::parse`](super::RequestParser::parse) (method, target, headers and a
/// `Content-Length` body) and from the parser (the header index and a decoded chunked
/// body). Building one allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) minor: u8,
    pub(crate) head: &'a [u8],
    pub(crate) spans: &'a [HeaderSpan],
    pub(crate) body: &'a [u8],
    pub(crate) keep_alive: bool,
    /// The path parameters the route's pattern captured, `(name, decoded value)`.
    pub(crate) params: &'a [(&'a str, &'a str)],
    /// The same, `(name, raw value)` as in the path.
    pub(crate) raw_params: &'a [(&'a str, &'a str)],
}

impl<'a> Request<'a> {
    /// The method token, case preserved (`GET`, `POST`, ...).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent (`/path?query`, or absolute-form / `*`).
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The target up to (not including) the first `?`.
    pub fn path(&self) -> &'a str {
        self.target
            .split_once('?')
            .map_or(self.target, |(path, _)| path)
    }

    /// The query string after the first `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The minor HTTP version: `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub fn version_minor(&self) -> u8 {
        self.minor
    }

    /// Whether this is a `HEAD` request (its response carries no body).
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The value of the first header field called `name` (ASCII case-insensitive),
    /// with surrounding whitespace removed.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All header fields in order of arrival, as `(name, value)`.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            head: self.head,
            spans: self.spans.iter(),
        }
    }

    /// The request body: the `Content-Length` bytes, or the decoded chunked data
    /// (trailers dropped). Empty when the request has no body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Whether the connection stays open after this request's response.
    ///
    /// HTTP/1.1 keeps the connection unless a `Connection` header lists `close`;
    /// HTTP/1.0 closes it unless a `Connection` header lists `keep-alive` (and not
    /// `close`). The request that reaches
    /// [`Limits::max_requests_per_connection`](super::Limits::max_requests_per_connection)
    /// is never kept alive.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The value of the path parameter `name` of the route that matched,
    /// percent-decoded: for a route `/users/:id` and the path `/users/a%20b`,
    /// `param("id")` is `Some("a b")`; for `/static/*rest` and
    /// `/static/css/a.css`, `param("rest")` is `Some("css/a.css")`. `None` for a name
    /// the pattern does not have.
    ///
    /// The path is split at `/` before decoding, so `%2F` never becomes a separator:
    /// in a `:name` value it decodes to a `/` of that one segment
    /// (`/users/a%2Fb` gives `a/b`); a `*name` value is decoded segment by segment
    /// and a request whose catch-all holds `%2F` is answered `400` (its decoded
    /// `/` could not be told from a separator). A malformed escape (`%zz`, `%4`),
    /// an encoded NUL (`%00`) or bytes that are not UTF-8 are `400 Bad Request`
    /// too, before the route runs. [`raw_param`](Self::raw_param) has the value as
    /// sent.
    ///
    /// ```
    /// # use ringcore_net::http::{Request, Response, Router};
    /// let router = Router::new().get("/users/:id", |req: &Request<'_>, res: &mut Response| {
    ///     let id = req.param("id").unwrap_or("");
    ///     res.set_body(format!("user {id}").as_bytes());
    /// });
    /// # let _ = router;
    /// ```
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// All path parameters the route captured, `(name, decoded value)` in pattern
    /// order (see [`param`](Self::param)).
    pub fn params(&self) -> &'a [(&'a str, &'a str)] {
        self.params
    }

    /// The value of the path parameter `name` as it appears in the path, not
    /// percent-decoded (`/users/a%2Fb` gives `a%2Fb`).
    pub fn raw_param(&self, name: &str) -> Option<&'a str> {
        self.raw_params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// All path parameters, `(name, raw value)` in pattern order.
    pub fn raw_params(&self) -> &'a [(&'a str, &'a str)] {
        self.raw_params
    }

    /// What a response to this request needs to know (HEAD, keep-alive, version).
    pub fn reply(&self) -> Reply {
        Reply {
            head: self.is_head(),
            keep_alive: self.keep_alive,
            minor: self.minor,
        }
    }
}

/// Iterator over a request's header fields, from [`Request::headers`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    head: &'a [u8],
    spans: std::slice::Iter<'a, HeaderSpan>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let span = self.spans.next()?;
        let range = |(start, end): (usize, usize)| &self.head[start..end];
        // Names are tokens (ASCII), so this never falls back to "".
        let name = std::str::from_utf8(range(span.name)).unwrap_or("");
        Some((name, range(span.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for Headers<'_> {}
