//! The router: `(method, path pattern)` to a route that may hold state; see [`Router`].

use super::pattern::{Class, Decoded, Params, Pattern};
use super::percent::DecodeError;
use super::response::render;
use super::Call;
use super::{write_response, BodyHandler, DateCache, Reply, Request, Response, HTTP_DATE_LEN};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The plain-function form of a buffered route: fill in the response for the
/// request. [`Router::get`] and friends take this or any closure of the same shape
/// that is `Send + Sync + 'static`.
pub type Route = fn(&Request<'_>, &mut Response);

type Handle = Arc<dyn Fn(&Request<'_>, &mut Response) + Send + Sync>;
type MakeBody = Arc<dyn Fn(&Request<'_>) -> Box<dyn BodyHandler> + Send + Sync>;
type MakeJob = Arc<dyn Fn(&Request<'_>) -> OffloadJob + Send + Sync>;

/// The deferred part of an [offload route](Router::offload) (fills in a fresh
/// `200 OK` [`Response`] on the offload thread) or of a [call route](Router::call)
/// (an outbound [`Call`] made by [`HttpConn`](super::HttpConn)).
pub struct OffloadJob(Work);

enum Work {
    Thread(Box<dyn FnOnce(&mut Response) + Send>),
    Call(Call),
}

impl OffloadJob {
    /// Wraps the closure an offload route returns.
    pub fn new(job: impl FnOnce(&mut Response) + Send + 'static) -> Self {
        OffloadJob(Work::Thread(Box::new(job)))
    }

    /// Runs the job (on the calling thread) and returns the response it filled in.
    /// A call route's job cannot run here (it needs the connection's worker): it is
    /// answered `502` with a body saying so.
    pub fn run(self) -> Response {
        let mut res = Response::new();
        match self.0 {
            Work::Thread(job) => job(&mut res),
            Work::Call(call) => {
                let e = std::io::Error::other(format!(
                    "an outbound call to {} runs only under HttpConn",
                    call.addr
                ));
                (call.answer)(Err(e), &mut res);
            }
        }
        res
    }

    /// The outbound call, if this is a call route's job.
    pub(crate) fn into_call(self) -> Result<Call, OffloadJob> {
        match self.0 {
            Work::Call(call) => Ok(call),
            work => Err(OffloadJob(work)),
        }
    }
}

impl std::fmt::Debug for OffloadJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OffloadJob")
    }
}

/// Routes requests by method and path to routes that may hold state. Built once,
/// then shared by every worker (it is `Send + Sync`).
///
/// # Routes
///
/// | added with | runs | body |
/// | --- | --- | --- |
/// | [`get`](Router::get), [`post`](Router::post), [`route`](Router::route) | `Fn(&Request, &mut Response)` on the worker | buffered, whole in [`Request::body`] |
/// | [`fixed`](Router::fixed) | nothing: a response rendered once | read and dropped |
/// | [`stream`](Router::stream) | `Fn(&Request) -> Box<dyn BodyHandler>` | in pieces to the [`BodyHandler`] |
/// | [`offload`](Router::offload) | `Fn(&Request) -> job`, the job on the offload thread | buffered |
///
/// A route is any closure that is `Send + Sync + 'static` (a plain `fn` too): the
/// router is built once and shared by every worker, so state lives in the closure
/// (an `Arc<T>`, atomics, a `Mutex` for what is rarely written).
///
/// # Paths
///
/// `/json` matches that path only; `/users/:id` matches one non-empty segment and
/// captures it ([`Request::param`]); `/static/*rest` matches `/static/` and everything
/// below it (`rest` may be empty; `/static` itself is not matched). Matching is on the
/// raw path (the target before `?`), byte for byte: no percent-decoding, no `..`
/// resolution, and a trailing slash makes a different path.
///
/// **Precedence** (whatever the order of registration): an exact path first, then
/// patterns with parameters, then catch-all prefixes. Among patterns of one kind, at
/// the first segment where two differ the literal beats the parameter, which beats the
/// catch-all: `/users/me` > `/users/:id`; `/a/b/:y` > `/a/:x/c`;
/// `/static/img/*f` > `/static/*f`. The path picks the route entry first and the
/// method second: a path whose best pattern lacks the method is `405`, even if a less
/// specific pattern has it.
///
/// **Conflicts panic** when the router is built: the same method on the same path
/// twice, two patterns that match the same paths with different parameter names
/// (`/u/:id` and `/u/:name`), and an invalid path (not starting with `/`, holding `?`,
/// an unnamed parameter, a catch-all not last, more than
/// [`MAX_PARAMS`](super::MAX_PARAMS) parameters).
///
/// # Methods
///
/// `HEAD` runs the `GET` route of a path unless a `HEAD` route is registered (the
/// body is dropped when rendering). A path with no route for the method is
/// `405 Method Not Allowed` with `Allow` listing the path's methods, `HEAD` included
/// where `GET` exists, and `OPTIONS`. `OPTIONS` on a path with no `OPTIONS` route is
/// answered `204 No Content` with the same `Allow`. An unknown path is
/// `404 Not Found`.
///
/// ```
/// # use ringcore_net::http::{Request, Response, Router};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let hits = Arc::new(AtomicU64::new(0));
/// let h = hits.clone();
/// let router = Router::new()
///     .get("/hits", move |_: &Request<'_>, res: &mut Response| {
///         let n = h.fetch_add(1, Ordering::Relaxed) + 1;
///         res.set_body(n.to_string().as_bytes());
///     })
///     .get("/users/:id", |req: &Request<'_>, res: &mut Response| {
///         res.set_body(req.param("id").unwrap_or("").as_bytes());
///     });
/// # let _ = router;
/// ```
///
/// # A complete service
///
/// State, a path parameter, a buffered body and an offloaded call
/// (`examples/http.rs` has more: a streamed echo, a CPU-heavy hash):
///
/// ```no_run
/// use ringcore_net::http::{HttpConn, Limits, Request, Response, Router};
/// use ringcore_net::Serve;
/// use ringcore_runtime::Runtime;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// fn main() -> std::io::Result<()> {
///     let visits = Arc::new(AtomicU64::new(0)); // shared by every worker
///     let router = Router::new()
///         .get("/visits", move |_: &Request<'_>, res: &mut Response| {
///             let n = visits.fetch_add(1, Ordering::Relaxed) + 1;
///             res.set_body(format!("{n}\n").as_bytes());
///         })
///         // A path parameter and a body (buffered, at most 16 KiB: 413 above).
///         .post("/notes/:id", |req: &Request<'_>, res: &mut Response| {
///             let id = req.param("id").unwrap_or("");
///             let text = format!("note {id}: {} bytes\n", req.body().len());
///             res.set_status(201).set_body(text.as_bytes());
///         })
///         .body_limit(16 * 1024)
///         // Blocking work runs on the worker's offload thread, not the worker.
///         .offload("GET", "/hostname", |_: &Request<'_>| {
///             |res: &mut Response| {
///                 let name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
///                 res.set_body(name.trim().as_bytes());
///             }
///         });
///         // Outbound call: Router::call (examples/service.rs).
///     let rt = Runtime::builder().build()?;
///     rt.serve("127.0.0.1:8080", HttpConn::factory(router, Limits::default()))
/// }
/// ```
#[derive(Clone, Default)]
pub struct Router {
    exact: Vec<Entry>,
    /// Sorted by [`Pattern::specificity`].
    param: Vec<Entry>,
    /// Sorted by [`Pattern::specificity`].
    prefix: Vec<Entry>,
    /// The path and method of the route added last (for [`Router::body_limit`]).
    last: Option<(Box<str>, Box<str>)>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for e in self.exact.iter().chain(&self.param).chain(&self.prefix) {
            for m in &e.methods {
                l.entry(&format_args!("{} {}", m.name, e.pattern.text));
            }
        }
        l.finish()
    }
}

/// One path pattern and its methods, in registration order.
#[derive(Clone)]
struct Entry {
    pattern: Pattern,
    methods: Vec<Method>,
}

/// One route: a method of an entry.
#[derive(Clone)]
struct Method {
    name: Box<str>,
    target: Target,
    /// The buffered-body limit of this route, if not `Limits::max_buffered_body`.
    body_limit: Option<usize>,
}

/// What a route runs.
#[derive(Clone)]
enum Target {
    Fn(Handle),
    Fixed(Arc<Fixed>),
    Stream(MakeBody),
    Offload(MakeJob),
}

/// How the body of a request is to be read, decided from its head.
pub(crate) enum BodyKind {
    /// Collected for a buffered (or offload) route, up to the limit given (`None`:
    /// `Limits::max_buffered_body`).
    Buffer(Option<usize>),
    /// Not needed: the response does not depend on it (404, 405, `OPTIONS`,
    /// fixed). Read and dropped, or (with `Expect: 100-continue`) never asked for.
    Discard,
    /// Handed piece by piece to the handler this makes.
    Stream(Box<dyn BodyHandler>),
}

/// What [`Router::dispatch`] did.
pub(crate) enum Served {
    /// The response was written; whether the connection stays open.
    Done(bool),
    /// An offload route: run the job off the worker, then render its response.
    Job(OffloadJob),
}

/// The outcome of looking a request up.
enum Lookup<'a> {
    /// The route; its parameters are in the `Params` given to `find`.
    Route(&'a Method),
    NotFound,
    NotAllowed(&'a Entry),
    Options(&'a Entry),
    /// The route's path parameters do not decode: 400.
    BadPath(DecodeError),
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

    /// Registers `target` for `method` on `path`, enforcing the rules of the
    /// [`Router`] docs.
    fn add(mut self, method: &str, path: &str, target: Target) -> Self {
        if method.is_empty() || !method.bytes().all(super::fields::is_token) {
            panic!("ringcore router: invalid method {method:?} for route {path:?}");
        }
        let pattern = Pattern::parse(path).unwrap_or_else(|e| panic!("ringcore router: {e}"));
        let list = match pattern.class() {
            Class::Exact => &mut self.exact,
            Class::Param => &mut self.param,
            Class::Prefix => &mut self.prefix,
        };
        let route = Method {
            name: method.into(),
            target,
            body_limit: None,
        };
        match list.iter_mut().find(|e| e.pattern.same_shape(&pattern)) {
            Some(e) if e.pattern.text != pattern.text => panic!(
                "ringcore router: route {path:?} conflicts with {:?}: both match the same \
                 paths (use the same parameter names in both)",
                e.pattern.text
            ),
            Some(e) if e.methods.iter().any(|m| *m.name == *method) => {
                panic!("ringcore router: route {method} {path:?} is registered twice")
            }
            Some(e) => e.methods.push(route),
            None => {
                list.push(Entry {
                    pattern,
                    methods: vec![route],
                });
                list.sort_by(|a, b| a.pattern.specificity(&b.pattern));
            }
        }
        self.last = Some((path.into(), method.into()));
        self
    }

    /// Adds a buffered route for `method` (case-sensitive, e.g. `"POST"`) on `path`
    /// (e.g. `"/json"`, `"/users/:id"`, `"/files/*rest"`): `route` runs on the
    /// worker once the whole body is in, with [`Request::body`] holding it (up to
    /// [`Limits::max_buffered_body`](super::Limits::max_buffered_body) or this
    /// route's [`body_limit`](Router::body_limit); larger is `413`).
    ///
    /// `route` must not block: it runs on the worker, which serves every other
    /// connection of its core meanwhile. Blocking or CPU-heavy work goes to
    /// [`offload`](Router::offload).
    ///
    /// # Panics
    ///
    /// On an invalid method or path, or a conflict (see [`Router`]).
    pub fn route<F>(self, method: &str, path: &str, route: F) -> Self
    where
        F: Fn(&Request<'_>, &mut Response) + Send + Sync + 'static,
    {
        self.add(method, path, Target::Fn(Arc::new(route)))
    }

    /// Adds a `GET` route (which also answers `HEAD`); see [`route`](Router::route).
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    pub fn get<F>(self, path: &str, route: F) -> Self
    where
        F: Fn(&Request<'_>, &mut Response) + Send + Sync + 'static,
    {
        self.route("GET", path, route)
    }

    /// Adds a `POST` route; see [`route`](Router::route).
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    pub fn post<F>(self, path: &str, route: F) -> Self
    where
        F: Fn(&Request<'_>, &mut Response) + Send + Sync + 'static,
    {
        self.route("POST", path, route)
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
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
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
    /// gets the body in pieces (see the [`body` module docs](super::BodyHandler)), and
    /// may answer while it arrives ([`BodyHandler::on_body_out`]). Bodies up to
    /// [`Limits::max_body_bytes`](super::Limits::max_body_bytes) are accepted; memory
    /// per connection stays at one receive batch.
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    pub fn stream<F>(self, method: &str, path: &str, route: F) -> Self
    where
        F: Fn(&Request<'_>) -> Box<dyn BodyHandler> + Send + Sync + 'static,
    {
        self.add(method, path, Target::Stream(Arc::new(route)))
    }

    /// Adds a route whose work runs off the worker: `route` runs on the worker with
    /// the whole request (body buffered as for [`route`](Router::route)), takes what
    /// it needs from it, and returns a job; the job runs on the worker's offload
    /// thread ([`Conn::offload`](crate::Conn::offload)) and fills in the response,
    /// which is sent from the worker. Meanwhile the connection reads no further
    /// request; other connections are served as usual. If the client goes away
    /// first, the response is dropped. A job that panics is answered `500`.
    ///
    /// For blocking calls (a file read through a blocking API, a DNS lookup, a
    /// legacy client library) and CPU-heavy work (password hashing). Jobs of one
    /// worker share its offload pool ([`OffloadLimits`](crate::OffloadLimits): a few
    /// threads, a bounded queue; a full queue is answered `503` with `Retry-After`),
    /// and a job past [`Limits::offload_timeout`](super::Limits::offload_timeout) is
    /// answered `504` (its late result dropped).
    ///
    /// ```
    /// # use ringcore_net::http::{Request, Response, Router};
    /// let router = Router::new().offload("GET", "/slow", |req: &Request<'_>| {
    ///     let n: u64 = req.query().and_then(|q| q.parse().ok()).unwrap_or(1);
    ///     move |res: &mut Response| {
    ///         std::thread::sleep(std::time::Duration::from_millis(n)); // blocking is fine here
    ///         res.set_body(b"done\n");
    ///     }
    /// });
    /// # let _ = router;
    /// ```
    ///
    /// [`Router::handle`] and [`Router::serve`], called directly, run the job inline.
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    pub fn offload<F, J>(self, method: &str, path: &str, route: F) -> Self
    where
        F: Fn(&Request<'_>) -> J + Send + Sync + 'static,
        J: FnOnce(&mut Response) + Send + 'static,
    {
        let make = move |req: &Request<'_>| OffloadJob::new(route(req));
        self.add(method, path, Target::Offload(Arc::new(make)))
    }

    /// Adds a route that calls a backend: `route` runs on the worker with the whole
    /// request (body buffered as for [`route`](Router::route)) and returns the
    /// [`Call`] to make; [`HttpConn`](super::HttpConn) opens the connection on the
    /// same worker ([`Conn::connect_with`](crate::Conn::connect_with)), sends the
    /// request, reads the whole reply (at most [`Call::max_body`] bytes), and the
    /// call's [`answer`](Call::answer) turns it into the response (by default the
    /// backend's status, `Content-Type` and body; `502`, or `504` on a timeout,
    /// when the call fails). Meanwhile the connection reads no further request;
    /// other connections are served as usual. If the client goes away first, the
    /// call is aborted.
    ///
    /// ```
    /// # use ringcore_net::http::{Call, Request, Router};
    /// let backend: std::net::SocketAddr = "127.0.0.1:9000".parse().unwrap();
    /// let router = Router::new().call("GET", "/quote/:sym", move |req: &Request<'_>| {
    ///     let sym = req.raw_param("sym").unwrap_or("");
    ///     Call::get(backend, &format!("/price/{sym}"))
    /// });
    /// # let _ = router;
    /// ```
    ///
    /// [`Router::handle`] and [`Router::serve`], called directly, cannot make the
    /// call: they answer it as a failed one (`502`).
    ///
    /// # Panics
    ///
    /// As [`route`](Router::route).
    pub fn call<F>(self, method: &str, path: &str, route: F) -> Self
    where
        F: Fn(&Request<'_>) -> Call + Send + Sync + 'static,
    {
        let make = move |req: &Request<'_>| OffloadJob(Work::Call(route(req)));
        self.add(method, path, Target::Offload(Arc::new(make)))
    }

    /// Sets the largest body the route added last accepts, instead of
    /// [`Limits::max_buffered_body`](super::Limits::max_buffered_body); larger is
    /// answered `413` (a declared `Content-Length` before any body byte is read, so
    /// an `Expect: 100-continue` client is never told to send it). Applies to
    /// buffered and offload routes; the connection-wide
    /// [`Limits::max_body_bytes`](super::Limits::max_body_bytes) still applies, and
    /// the bytes count against the worker's
    /// [`Limits::worker_body_budget`](super::Limits::worker_body_budget).
    ///
    /// ```
    /// # use ringcore_net::http::{Request, Response, Router};
    /// fn upload(req: &Request<'_>, res: &mut Response) {
    ///     res.set_body(req.body().len().to_string().as_bytes());
    /// }
    /// let router = Router::new().post("/upload", upload).body_limit(512 * 1024);
    /// # let _ = router;
    /// ```
    ///
    /// # Panics
    ///
    /// If no route was added yet.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        let Some((path, method)) = self.last.clone() else {
            panic!("ringcore router: body_limit({bytes}) called before any route was added");
        };
        let entry = self
            .exact
            .iter_mut()
            .chain(&mut self.param)
            .chain(&mut self.prefix)
            .find(|e| e.pattern.text == path);
        if let Some(m) = entry.and_then(|e| e.methods.iter_mut().find(|m| m.name == method)) {
            m.body_limit = Some(bytes);
        }
        self
    }

    /// Looks `req` up.
    fn find<'a>(&'a self, req: &Request<'a>, params: &mut Params<'a>) -> Lookup<'a> {
        // `p` is the target's path (the part before any `?`) iff the target is `p`
        // or `p?...`, as `p` holds no `?`: no need to scan the target for one.
        let target = req.target().as_bytes();
        let is_path = |p: &[u8]| match target.get(p.len()) {
            None => target == p,
            Some(&next) => next == b'?' && target.starts_with(p),
        };
        let entry = match self
            .exact
            .iter()
            .find(|e| is_path(e.pattern.text.as_bytes()))
        {
            Some(e) => e,
            None => {
                let path = req.path();
                match self
                    .param
                    .iter()
                    .chain(&self.prefix)
                    .find(|e| e.pattern.matches(path, params))
                {
                    Some(e) => e,
                    None => return Lookup::NotFound,
                }
            }
        };
        let find = |method: &[u8]| {
            entry
                .methods
                .iter()
                .find(|m| m.name.len() == method.len() && m.name.as_bytes() == method)
        };
        let method = req.method().as_bytes();
        match find(method).or_else(|| if req.is_head() { find(b"GET") } else { None }) {
            Some(m) => Lookup::Route(m),
            None if method == b"OPTIONS" => Lookup::Options(entry),
            None => Lookup::NotAllowed(entry),
        }
    }

    /// How the body of `req` (a head whose body follows) is to be read.
    pub(crate) fn body_kind(&self, req: &Request<'_>) -> BodyKind {
        let mut params = Params::new();
        let (found, decoded) = decode(self.find(req, &mut params), &params);
        match found {
            Lookup::Route(m) => match &m.target {
                Target::Fn(_) | Target::Offload(_) => BodyKind::Buffer(m.body_limit),
                Target::Stream(make) => {
                    let view = decoded.view();
                    BodyKind::Stream(make(&with_params(req, &view, &params)))
                }
                Target::Fixed(_) => BodyKind::Discard,
            },
            _ => BodyKind::Discard,
        }
    }

    /// Runs the matching route, or fills in 404 / 405 / the `OPTIONS` answer. `res`
    /// should start cleared. An offload route's job runs inline.
    pub fn handle(&self, req: &Request<'_>, res: &mut Response) {
        let mut params = Params::new();
        let (found, decoded) = decode(self.find(req, &mut params), &params);
        if let Some(job) = Self::fill(found, &decoded.view(), &params, req, res) {
            *res = job.run();
        }
    }

    /// [`Router::handle`] once the route is found; an offload route's job is
    /// returned, not run.
    fn fill(
        found: Lookup<'_>,
        params: &Params<'_>,
        raw: &Params<'_>,
        req: &Request<'_>,
        res: &mut Response,
    ) -> Option<OffloadJob> {
        match found {
            Lookup::Route(m) => {
                let req = with_params(req, params, raw);
                match &m.target {
                    Target::Fn(route) => route(&req, res),
                    Target::Offload(make) => return Some(make(&req)),
                    Target::Stream(make) => {
                        let mut h = make(&req);
                        if !req.body().is_empty() {
                            h.on_body(req.body());
                        }
                        h.on_end(res);
                    }
                    Target::Fixed(fixed) => {
                        res.set_status(fixed.status)
                            .set_content_type(fixed.content_type)
                            .set_body(&fixed.body);
                    }
                }
            }
            Lookup::NotFound => {
                res.set_status(404)
                    .set_content_type("text/plain")
                    .set_body(b"Not Found\n");
            }
            Lookup::NotAllowed(entry) => {
                res.set_status(405)
                    .set_content_type("text/plain")
                    .set_body(b"Method Not Allowed\n")
                    .header("Allow", &allow(entry));
            }
            Lookup::Options(entry) => {
                res.set_status(204).header("Allow", &allow(entry));
            }
            Lookup::BadPath(why) => {
                res.set_status(400)
                    .set_content_type("text/plain")
                    .set_body(format!("Bad Request: {}\n", why.as_str()).as_bytes());
            }
        }
        None
    }

    /// Clears `res`, routes `req` into it and appends the rendered response to
    /// `out` (a [`fixed`](Router::fixed) route's response is written without `res`;
    /// an offload route's job runs inline). Returns whether the connection stays
    /// open.
    pub fn serve(
        &self,
        req: &Request<'_>,
        res: &mut Response,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> bool {
        match self.dispatch(req, res, date, out) {
            Served::Done(keep) => keep,
            Served::Job(job) => job.run().write_to(out, date, req.reply()),
        }
    }

    /// [`Router::serve`], handing an offload route's job back instead of running it.
    pub(crate) fn dispatch(
        &self,
        req: &Request<'_>,
        res: &mut Response,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> Served {
        let mut params = Params::new();
        let (found, decoded) = decode(self.find(req, &mut params), &params);
        if let Lookup::Route(m) = &found {
            if let Target::Fixed(fixed) = &m.target {
                return Served::Done(fixed.write(out, date, req.reply()));
            }
        }
        res.clear();
        match Self::fill(found, &decoded.view(), &params, req, res) {
            Some(job) => Served::Job(job),
            None => Served::Done(res.write_to(out, date, req.reply())),
        }
    }
}

/// A route's captured parameters, percent-decoded; a route whose parameters do not
/// decode becomes a 400 (before it runs, before its body is read). Other lookups
/// decode nothing.
fn decode<'a>(found: Lookup<'a>, raw: &Params<'a>) -> (Lookup<'a>, Decoded<'a>) {
    match found {
        Lookup::Route(_) if !raw.as_slice().is_empty() => match Decoded::new(raw) {
            Ok(d) => (found, d),
            Err(e) => (Lookup::BadPath(e), Decoded::empty()),
        },
        _ => (found, Decoded::empty()),
    }
}

/// `req` with the captured path parameters, decoded and raw.
fn with_params<'b>(req: &Request<'b>, params: &'b Params<'b>, raw: &'b Params<'b>) -> Request<'b> {
    Request {
        params: params.as_slice(),
        raw_params: raw.as_slice(),
        ..*req
    }
}

/// The `Allow` value for a path: its methods in registration order, `HEAD` after
/// `GET` when not registered itself, and `OPTIONS` (answered by the router).
fn allow(entry: &Entry) -> Vec<u8> {
    let has = |m: &str| entry.methods.iter().any(|x| &*x.name == m);
    let mut out = Vec::new();
    let mut add = |m: &str| {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(m.as_bytes());
    };
    for m in &entry.methods {
        add(&m.name);
        if &*m.name == "GET" && !has("HEAD") {
            add("HEAD");
        }
    }
    if !has("OPTIONS") {
        add("OPTIONS");
    }
    out
}
