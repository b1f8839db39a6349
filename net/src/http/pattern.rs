//! Route paths: literal (`/json`), with parameters (`/users/:id`) and prefixes
//! (`/static/*rest`), and the order in which they are tried.
//!
//! A pattern is split at `/` into segments; each is a literal, a parameter `:name`
//! (one non-empty segment) or, last only, a catch-all `*name` (the rest of the path,
//! possibly empty, slashes included). Matching compares the raw request path (the
//! target before any `?`), byte for byte, without percent-decoding or normalising
//! `.`/`..` segments. Captured values are then percent-decoded per segment
//! ([`Decoded`]), after the split, so `%2F` never becomes a separator.

use super::percent::{decode_segment, decode_segments, DecodeError};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Most parameters (`:name` and `*name`) one pattern may hold.
pub const MAX_PARAMS: usize = 8;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    Param(Box<str>),
    Rest(Box<str>),
}

impl Seg {
    /// Rank for ordering: a literal is more specific than a parameter, which is
    /// more specific than a catch-all.
    fn rank(&self) -> u8 {
        match self {
            Seg::Lit(_) => 0,
            Seg::Param(_) => 1,
            Seg::Rest(_) => 2,
        }
    }
}

/// Which list a pattern belongs to; tried in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Only literals: matched by string equality.
    Exact,
    /// At least one `:name`, no catch-all.
    Param,
    /// Ends in `*name`.
    Prefix,
}

/// A parsed route path.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// As registered.
    pub(crate) text: Box<str>,
    segs: Vec<Seg>,
}

/// The parameters one match captured: `(name, raw value)` pairs in pattern order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params<'a> {
    len: usize,
    items: [(&'a str, &'a str); MAX_PARAMS],
    /// The last item is a catch-all (`*name`): its value spans segments.
    rest: bool,
}

impl<'a> Params<'a> {
    pub(crate) fn new() -> Self {
        Params {
            len: 0,
            items: [("", ""); MAX_PARAMS],
            rest: false,
        }
    }

    pub(crate) fn as_slice(&self) -> &[(&'a str, &'a str)] {
        &self.items[..self.len]
    }

    fn push(&mut self, name: &'a str, value: &'a str) {
        // `Pattern::parse` refuses more than MAX_PARAMS: never full here.
        if self.len < MAX_PARAMS {
            self.items[self.len] = (name, value);
            self.len += 1;
        }
    }
}

/// A match's parameters, percent-decoded: a `:name` value is one segment, decoded
/// whole (a `%2F` in it is a `/` of the value); a `*name` value is decoded segment by
/// segment, and refused if a segment holds `%2F` (it would read as a separator).
/// Values without `%` borrow the path; the others are allocated.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    len: usize,
    items: [(&'a str, Cow<'a, str>); MAX_PARAMS],
}

impl<'a> Decoded<'a> {
    /// Nothing captured.
    pub(crate) fn empty() -> Self {
        Decoded {
            len: 0,
            items: std::array::from_fn(|_| ("", Cow::Borrowed(""))),
        }
    }

    /// Decodes `raw`.
    ///
    /// # Errors
    ///
    /// The first value that does not decode (a bad escape, NUL, not UTF-8, an
    /// encoded slash in a catch-all).
    pub(crate) fn new(raw: &Params<'a>) -> Result<Self, DecodeError> {
        let mut out = Decoded::empty();
        for (i, &(name, value)) in raw.as_slice().iter().enumerate() {
            let rest = raw.rest && i + 1 == raw.len;
            let v = if rest {
                decode_segments(value)?
            } else {
                decode_segment(value)?
            };
            out.items[i] = (name, v);
            out.len = i + 1;
        }
        Ok(out)
    }

    /// The decoded values as `(name, value)` pairs.
    pub(crate) fn view(&self) -> Params<'_> {
        let mut p = Params::new();
        for (name, v) in &self.items[..self.len] {
            p.push(name, v);
        }
        p
    }
}

impl Pattern {
    /// Parses a route path.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong with `text`: it must start with `/`, hold no
    /// `?` or `#`, name every parameter (`[A-Za-z0-9_]+`, each name once), put a
    /// catch-all last, and hold at most [`MAX_PARAMS`] parameters.
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        let bad = |why: &str| Err(format!("invalid route path {text:?}: {why}"));
        let Some(rest) = text.strip_prefix('/') else {
            return bad("it must start with '/'");
        };
        if text.contains(['?', '#']) {
            return bad("a route path holds no query ('?') or fragment ('#')");
        }
        let mut segs = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let (kind, name) = match part.as_bytes().first() {
                Some(b':') => (1, &part[1..]),
                Some(b'*') => (2, &part[1..]),
                _ => (0, *part),
            };
            if kind == 0 {
                segs.push(Seg::Lit((*part).into()));
                continue;
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return bad(
                    "a parameter needs a name of letters, digits and '_' (\":id\", \"*rest\")",
                );
            }
            if names.contains(&name) {
                return bad("a parameter name is used twice");
            }
            names.push(name);
            if kind == 2 && i + 1 != parts.len() {
                return bad("a catch-all ('*name') must be the last segment");
            }
            segs.push(if kind == 1 {
                Seg::Param(name.into())
            } else {
                Seg::Rest(name.into())
            });
        }
        if names.len() > MAX_PARAMS {
            return bad("more than 8 parameters");
        }
        Ok(Pattern {
            text: text.into(),
            segs,
        })
    }

    pub(crate) fn class(&self) -> Class {
        match self.segs.last() {
            Some(Seg::Rest(_)) => Class::Prefix,
            _ if self.segs.iter().any(|s| matches!(s, Seg::Param(_))) => Class::Param,
            _ => Class::Exact,
        }
    }

    /// Whether `other` matches exactly the same paths (same segments, parameters
    /// in the same places whatever their names).
    pub(crate) fn same_shape(&self, other: &Pattern) -> bool {
        self.segs.len() == other.segs.len()
            && self
                .segs
                .iter()
                .zip(&other.segs)
                .all(|(a, b)| match (a, b) {
                    (Seg::Lit(x), Seg::Lit(y)) => x == y,
                    _ => a.rank() == b.rank(),
                })
    }

    /// The order among patterns of one class: at the first segment where they
    /// differ in kind, the literal (then the parameter) comes first; so
    /// `/a/b/:y` is tried before `/a/:x/c`, and `/static/img/*f` before `/static/*f`.
    pub(crate) fn specificity(&self, other: &Pattern) -> Ordering {
        let a = self.segs.iter().map(Seg::rank);
        let b = other.segs.iter().map(Seg::rank);
        a.cmp(b)
    }

    /// Matches `path` (a request path, no query), filling `params`.
    pub(crate) fn matches<'a>(&'a self, path: &'a str, params: &mut Params<'a>) -> bool {
        let Some(mut rest) = path.strip_prefix('/') else {
            return false;
        };
        *params = Params::new();
        let n = self.segs.len();
        for (i, seg) in self.segs.iter().enumerate() {
            let last = i + 1 == n;
            if let Seg::Rest(name) = seg {
                params.push(name, rest);
                params.rest = true;
                return true;
            }
            let (part, tail) = match rest.split_once('/') {
                Some((p, t)) if !last => (p, Some(t)),
                Some(_) => return false, // more segments than the pattern
                None if last => (rest, None),
                None => return false, // fewer segments than the pattern
            };
            match seg {
                Seg::Lit(lit) if **lit == *part => {}
                Seg::Param(name) if !part.is_empty() => params.push(name, part),
                _ => return false,
            }
            if let Some(t) = tail {
                rest = t;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let p = Pattern::parse(pattern).unwrap();
        let mut params = Params::new();
        p.matches(path, &mut params).then(|| {
            params
                .as_slice()
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        })
    }

    fn one(name: &str, value: &str) -> Option<Vec<(String, String)>> {
        Some(vec![(name.into(), value.into())])
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert_eq!(caps("/", "/"), Some(vec![]));
        assert_eq!(caps("/", "/a"), None);
        assert_eq!(caps("/a/b", "/a/b"), Some(vec![]));
        assert_eq!(caps("/a/b", "/a/b/"), None);
        assert_eq!(caps("/a/b", "/a"), None);
        assert_eq!(Pattern::parse("/a/b").unwrap().class(), Class::Exact);
    }

    #[test]
    fn params_take_one_non_empty_segment() {
        assert_eq!(caps("/users/:id", "/users/42"), one("id", "42"));
        assert_eq!(caps("/users/:id", "/users/"), None);
        assert_eq!(caps("/users/:id", "/users/42/x"), None);
        assert_eq!(caps("/users/:id", "/users"), None);
        assert_eq!(caps("/users/:id", "/users/%2F"), one("id", "%2F"));
        assert_eq!(
            caps("/a/:x/b/:y", "/a/1/b/2"),
            Some(vec![("x".into(), "1".into()), ("y".into(), "2".into())])
        );
        assert_eq!(Pattern::parse("/a/:x").unwrap().class(), Class::Param);
    }

    #[test]
    fn catch_all_takes_the_rest() {
        assert_eq!(
            caps("/static/*rest", "/static/a/b.css"),
            one("rest", "a/b.css")
        );
        assert_eq!(caps("/static/*rest", "/static/"), one("rest", ""));
        assert_eq!(caps("/static/*rest", "/static"), None);
        assert_eq!(caps("/static/*rest", "/staticx/a"), None);
        assert_eq!(caps("/*all", "/"), one("all", ""));
        assert_eq!(
            caps("/u/:id/*f", "/u/7/a/b"),
            Some(vec![("id".into(), "7".into()), ("f".into(), "a/b".into())])
        );
        assert_eq!(Pattern::parse("/s/*r").unwrap().class(), Class::Prefix);
    }

    fn decoded(pattern: &str, path: &str) -> Result<Vec<(String, String)>, DecodeError> {
        let p = Pattern::parse(pattern).unwrap();
        let mut params = Params::new();
        assert!(p.matches(path, &mut params), "{pattern} {path}");
        let d = Decoded::new(&params)?;
        let out = d
            .view()
            .as_slice()
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Ok(out)
    }

    #[test]
    fn values_are_decoded_after_the_split() {
        let one = |n: &str, v: &str| Ok(vec![(n.to_string(), v.to_string())]);
        assert_eq!(decoded("/u/:id", "/u/a%20b"), one("id", "a b"));
        assert_eq!(
            decoded("/u/:id", "/u/a%2Fb"),
            one("id", "a/b"),
            "one segment"
        );
        assert_eq!(decoded("/u/:id", "/u/%zz"), Err(DecodeError::BadEscape));
        assert_eq!(decoded("/u/:id", "/u/a%00"), Err(DecodeError::Nul));
        assert_eq!(decoded("/s/*r", "/s/a%20b/c%25"), one("r", "a b/c%"));
        assert_eq!(
            decoded("/s/*r", "/s/a%2Fb/c"),
            Err(DecodeError::EncodedSlash)
        );
        assert_eq!(decoded("/s/*r", "/s/a/%2e%2e/b"), one("r", "a/../b"));
        assert_eq!(
            decoded("/u/:id/*f", "/u/%41/x%2Cy"),
            Ok(vec![("id".into(), "A".into()), ("f".into(), "x,y".into())])
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for (p, why) in [
            ("users", "start with '/'"),
            ("/a?b", "no query"),
            ("/a/:", "needs a name"),
            ("/a/:b-c", "needs a name"),
            ("/a/*r/b", "must be the last"),
            ("/:a/:a", "used twice"),
            ("/:a/:b/:c/:d/:e/:f/:g/:h/:i", "more than 8"),
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
            assert!(e.contains(p), "{p}: {e}");
        }
    }

    #[test]
    fn shape_and_specificity() {
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("/u/:id").same_shape(&p("/u/:name")));
        assert!(!p("/u/:id").same_shape(&p("/v/:id")));
        assert!(!p("/u/:id").same_shape(&p("/u/*id")));
        assert_eq!(p("/a/b/:y").specificity(&p("/a/:x/c")), Ordering::Less);
        assert_eq!(p("/s/img/*f").specificity(&p("/s/*f")), Ordering::Less);
        assert_eq!(p("/s/:d/*f").specificity(&p("/s/*f")), Ordering::Less);
    }
}
