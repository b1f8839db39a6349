//! A minimal router: exact `(method, path)` matches to plain functions.

use super::{DateCache, Request, Response};

/// A route handler: fill in the response for the request. A plain `fn`, so a
/// [`Router`] is `Send + Sync` and can be shared by every worker.
pub type Route = fn(&Request<'_>, &mut Response);

/// Maps `(method, path)` to a [`Route`]; unknown paths get `404 Not Found`, known
/// paths with another method `405 Method Not Allowed` (with `Allow`). A `HEAD`
/// request runs the `GET` route of its path (the body is dropped when rendering).
///
/// Paths match exactly, query string excluded; there are no patterns.
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

/// The routes of one path: `(method, route)` in insertion order.
type Methods = Vec<(Box<str>, Route)>;

impl Router {
    /// A router with no routes (every request is 404).
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds `route` for `method` (case-sensitive, e.g. `"POST"`) on `path`
    /// (e.g. `"/json"`). A later route for the same pair replaces the earlier one.
    pub fn route(mut self, method: &str, path: &str, route: Route) -> Self {
        let i = match self.paths.iter().position(|(p, _)| &**p == path) {
            Some(i) => i,
            None => {
                self.paths.push((path.into(), Vec::new()));
                self.paths.len() - 1
            }
        };
        let methods = &mut self.paths[i].1;
        methods.retain(|(m, _)| &**m != method);
        methods.push((method.into(), route));
        self
    }

    /// Adds a `GET` route (which also answers `HEAD`).
    pub fn get(self, path: &str, route: Route) -> Self {
        self.route("GET", path, route)
    }

    /// Adds a `POST` route.
    pub fn post(self, path: &str, route: Route) -> Self {
        self.route("POST", path, route)
    }

    /// Runs the matching route, or fills in 404 / 405. `res` should start cleared.
    pub fn handle(&self, req: &Request<'_>, res: &mut Response) {
        let Some((_, methods)) = self.paths.iter().find(|(p, _)| &**p == req.path()) else {
            res.set_status(404)
                .set_content_type("text/plain")
                .set_body(b"Not Found\n");
            return;
        };
        let find = |method: &str| {
            methods
                .iter()
                .find(|(m, _)| &**m == method)
                .map(|&(_, route)| route)
        };
        let route = find(req.method()).or_else(|| if req.is_head() { find("GET") } else { None });
        match route {
            Some(route) => route(req, res),
            None => {
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
    /// `out`. Returns whether the connection stays open.
    pub fn serve(
        &self,
        req: &Request<'_>,
        res: &mut Response,
        date: &DateCache,
        out: &mut Vec<u8>,
    ) -> bool {
        res.clear();
        self.handle(req, res);
        res.write_to(out, date, req.reply())
    }
}
