//! A minimal router: exact `(method, path)` matches to plain functions.

use super::response::render;
use super::{write_response, DateCache, Reply, Request, Response, StreamRoute, HTTP_DATE_LEN};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// A route handler: fill in the response for the request. A plain `fn`, so a
/// [`Router`] is `Send + Sync` and can be shared by every worker.
pub type Route = fn(&Request<'_>, &mut Response);

/// Maps `(method, path)` to a [`Route`]; unknown paths get `404 Not Found`, known
/// paths with another method `405 Method Not Allowed` (with `Allow`). A `HEAD`
/// request runs the `GET` route of its path (the body is dropped when rendering).
///
/// Paths match exactly, query string excluded; there are no patterns (a path holding
/// `?` never matches, so it is not added).
///
/// ```
/// # use ringcore_net::http::{Request, Response, Router};
/// fn plaintext(_: &Request<'_>, res: &mut Response) {
///     res.set_content_type("text/plain").set_body(b"Hello, World!");
/// }
/// let router = Router::new().get("/plaintext", plaintext);
/// # let _ = router;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// One entry per path, each with its methods in insertion order.
    paths: Vec<(Box<str>, Methods)>,
}

/// The routes of one path: `(method, target)` in insertion order.
type Methods = Vec<(Box<str>, Target)>;

/// What a route runs.
#[derive(Clone)]
enum Target {
    Fn(Route),
    Fixed(Arc<Fixed>),
    Stream(StreamRoute),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Fn(_) => f.write_str("Fn"),
            Target::Fixed(x) => f.debug_tuple("Fixed").field(x).finish(),
            Target::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// How the body of a request is to be read, decided from its head.
pub(crate) enum BodyKind {
    /// Collected (capped) for a buffered route.
    Buffer,
    /// Read and dropped: the response does not depend on it (404, 405, fixed).
    Discard,
    /// Handed piece by piece to the handler this route makes.
    Stream(StreamRoute),
}

/// A response that never changes but for its `Date`.
#[derive(Debug)]
struct Fixed {
    status: u16,
    content_type: &'static str,
    body: Box<[u8]>,
    /// The whole response to a kept-alive, non-`HEAD` HTTP/1.1 request, rendered
    /// once; its `Date` (at `date_at`) is patched in when sent.
    /// INVARIANT: `rendered[date_at..date_at + HTTP_DATE_LEN]` is the `Date` value.
    rendered: Box<[u8]>,
    date_at: usize,
}

impl Fixed {
    fn new(status: u16, content_type: &'static str, body: &[u8]) -> Fixed {
        let mut rendered = Vec::new();
        let date = DateCache::new(UNIX_EPOCH);
        let date_at = render(
            &mut rendered,
            &date,
            Reply::default(),
            status,
            Some(content_type),
            &[],
            body,
        );
        Fixed {
            status,
            content_type,
            body: body.into(),
            rendered: rendered.into(),
            date_at,
        }
    }

    /// Appends the response; the rendered copy when `reply` is the common case.
    fn write(&self, out: &mut Vec<u8>, date: &DateCache, reply: Reply) -> bool {
        if reply != Reply::default() {
            return write_response(out, date, reply, self.status, self.content_type, &self.body);
        }
        let at = out.len() + self.date_at;
        out.extend_from_slice(&self.rendered);
        out[at..at + HTTP_DATE_LEN].copy_from_slice(date.as_bytes());
        true
    }
}

impl Router {
    /// A router with no routes (every request is 404).
    pub fn new() -> Self {
        Router::default()
    }

    fn add(mut self, method: &str, path: &str, target: Target) -> Self {
        if path.contains('?') {
            return self; // matched against the target minus its query: never matches
        }
        let i = match self.paths.iter().position(|(p, _)| &**p == path) {
            Some(i) => i,
            None => {
                self.paths.push((path.into(), Vec::new()));
                self.paths.len() - 1
            }
        };
        let methods = &mut self.paths[i].1;
        methods.retain(|(m, _)| &**m != method);
        methods.push((method.into(), target));
        self
    }

    /// Adds `route` for `method` (case-sensitive, e.g. `"POST"`) on `path`
    /// (e.g. `"/json"`). A later route for the same pair replaces the earlier one.
    pub fn route(self, method: &str, path: &str, route: Route) -> Self {
        self.add(method, path, Target::Fn(route))
    }

    /// Adds a route for `method` on `path` that always answers `status` with
    /// `content_type` and `body`. Served from a copy rendered once, with only the
    /// `Date` patched in per response: the cheapest answer there is.
    ///
    /// ```
    /// # use ringcore_net::http::Router;
    /// let router = Router::new().fixed("GET", "/plaintext", 200, "text/plain", b"Hello, World!");
    /// # let _ = router;
    /// ```
    pub fn fixed(
        self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &'static str,
        body: &[u8],
    ) -> Self {
        let fixed = Fixed::new(status, content_type, body);
        self.add(method, path, Target::Fixed(Arc::new(fixed)))
    }

    /// Adds a streaming route for `method` on `path`: `route` is called with the
    /// request head as soon as it is complete and returns the [`BodyHandler`] that
    /// gets the body in pieces (see the [`body` module docs](super::BodyHandler)).
    /// Bodies up to [`Limits::max_body_bytes`](super::Limits::max_body_bytes) are
    /// accepted; memory per connection stays at one receive batch.
    ///
    /// [`BodyHandler`]: super::BodyHandler
    pub fn stream(self, method: &str, path: &str, route: StreamRoute) -> Self {
        self.add(method, path, Target::Stream(route))
    }

    /// How the body of `req` (a head whose body follows) is to be read.
    pub(crate) fn body_kind(&self, req: &Request<'_>) -> BodyKind {
        match self.find(req) {
            Ok(Target::Fn(_)) => BodyKind::Buffer,
            Ok(Target::Stream(route)) => BodyKind::Stream(*route),
            Ok(Target::Fixed(_)) | Err(_) => BodyKind::Discard,
        }
    }

    /// Adds a `GET` route (which also answers `HEAD`).
    pub fn get(self, path: &str, route: Route) -> Self {
        self.route("GET", path, route)
    }

    /// Adds a `POST` route.
    pub fn post(self, path: &str, route: Route) -> Self {
        self.route("POST", path, route)
    }

    /// The route for `req`: `Err` with the path's methods for 405, `Err(None)` for 404.
    fn find(&self, req: &Request<'_>) -> Result<&Target, Option<&Methods>> {
        // `p` is the target's path (the part before any `?`) iff the target is `p`
        // or `p?...`, as `p` holds no `?`: no need to scan the target for one.
        let target = req.target().as_bytes();
        let is_path = |p: &[u8]| match target.get(p.len()) {
            None => target == p,
            Some(&next) => next == b'?' && target.starts_with(p),
        };
        let Some((_, methods)) = self.paths.iter().find(|(p, _)| is_path(p.as_bytes())) else {
            return Err(None);
        };
        let find = |method: &[u8]| {
            methods
                .iter()
                .find(|(m, _)| m.len() == method.len() && m.as_bytes() == method)
                .map(|(_, target)| target)
        };
        find(req.method().as_bytes())
            .or_else(|| if req.is_head() { find(b"GET") } else { None })
            .ok_or(Some(methods))
    }

    /// Runs the matching route, or fills in 404 / 405. `res` should start cleared.
    pub fn handle(&self, req: &Request<'_>, res: &mut Response) {
        Self::fill(self.find(req), req, res);
    }

    /// [`Router::handle`] once the route is found.
    fn fill(found: Result<&Target, Option<&Methods>>, req: &Request<'_>, res: &mut Response) {
        match found {
            Ok(Target::Fn(route)) => route(req, res),
            Ok(Target::Stream(route)) => route(req).on_end(res),
            Ok(Target::Fixed(fixed)) => {
                res.set_status(fixed.status)
                    .set_content_type(fixed.content_type)
                    .set_body(&fixed.body);
            }
            Err(None) => {
                res.set_status(404)
                    .set_content_type("text/plain")
                    .set_body(b"Not Found\n");
            }
            Err(Some(methods)) => {
                res.set_status(405)
                    .set_content_type("text/plain")
                    .set_body(b"Method Not Allowed\n");
                let mut allow = Vec::new();
                for (i, (m, _)) in methods.iter().enumerate() {
                    if i > 0 {
                        allow.extend_from_slice(b", ");
                    }
                    allow.extend_from_slice(m.as_bytes());
                }
                res.header("Allow", &allow);
            }
        }
    }

    /// Clears `res`, routes `req` into it and appends the rendered response to
    /// `out` (a [`fixed`](Router::fixed) route's response is written without `res`).
    /// Returns whether the connection stays open.
    pub fn serve(
        &self,
        req: &Request<'_>,
        res: &mut Response,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> bool {
        let found = self.find(req);
        if let Ok(Target::Fixed(fixed)) = found {
            return fixed.write(out, date, req.reply());
        }
        res.clear();
        Self::fill(found, req, res);
        res.write_to(out, date, req.reply())
    }
}
