//! `Accept-Encoding` (RFC 9110 section 12.5.3) for precompressed siblings
//! (`gzip_static`): which of `br` and `gzip` the client accepts, best first.

/// A content coding a precompressed sibling file can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Brotli, from `<file>.br`.
    Brotli,
    /// gzip, from `<file>.gz`.
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The sibling file's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => ".br",
            Encoding::Gzip => ".gz",
        }
    }
}

/// A qvalue in thousandths (`q=0.5` is 500); `None` if it does not parse.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut milli: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut scale = 100;
    for c in frac.bytes() {
        milli += u16::from(c - b'0') * scale;
        scale /= 10;
    }
    (milli <= 1000).then_some(milli)
}

/// The codings `Accept-Encoding` (all its field lines) allows, best first: each
/// with a q above 0 (listed, or covered by `*`), `br` before `gzip` at equal q.
/// An element with a malformed q is ignored; `x-gzip` counts as `gzip`. `identity`
/// is always acceptable here: the plain file is the fallback even when a client
/// refuses it (nginx does the same).
pub fn accepted<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<Encoding> {
    let (mut br, mut gzip, mut star) = (None, None, None);
    for v in values {
        let Ok(v) = std::str::from_utf8(v) else {
            continue;
        };
        for item in v.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            let mut q = Some(1000);
            for p in params {
                if let Some((k, val)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = qvalue(val.trim());
                    }
                }
            }
            let Some(q) = q else { continue };
            let slot = if coding.eq_ignore_ascii_case("br") {
                &mut br
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if coding == "*" {
                &mut star
            } else {
                continue;
            };
            // A coding listed twice: the higher q wins.
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
    }
    let mut out = Vec::new();
    let br = br.or(star).unwrap_or(0);
    let gzip = gzip.or(star).unwrap_or(0);
    if br > 0 {
        out.push(Encoding::Brotli);
    }
    if gzip > 0 {
        if gzip > br {
            out.insert(0, Encoding::Gzip);
        } else {
            out.push(Encoding::Gzip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    fn acc(v: &str) -> Vec<Encoding> {
        accepted([v.as_bytes()])
    }

    #[test]
    fn codings_and_qvalues() {
        assert_eq!(acc("gzip"), vec![Gzip]);
        assert_eq!(acc("gzip, deflate, br"), vec![Brotli, Gzip]);
        assert_eq!(acc("br;q=0.5, gzip"), vec![Gzip, Brotli]);
        assert_eq!(acc("br;q=0, gzip;q=0.001"), vec![Gzip]);
        assert_eq!(acc("gzip;q=0"), Vec::<Encoding>::new(), "q=0 refuses");
        assert_eq!(acc("GZIP ; Q=1.000"), vec![Gzip]);
        assert_eq!(acc("*"), vec![Brotli, Gzip]);
        assert_eq!(acc("*;q=0.3, gzip;q=0"), vec![Brotli]);
        assert_eq!(acc("x-gzip"), vec![Gzip]);
        assert_eq!(acc("identity"), Vec::<Encoding>::new());
        assert_eq!(acc(""), Vec::<Encoding>::new());
        assert_eq!(acc("gzip;q=2"), Vec::<Encoding>::new(), "bad q ignored");
        assert_eq!(
            acc("gzip;q=0.5555"),
            Vec::<Encoding>::new(),
            "bad q ignored"
        );
        assert_eq!(acc("gzip;q=1.5"), Vec::<Encoding>::new(), "bad q ignored");
        assert_eq!(acc("gzip;q=0, gzip"), vec![Gzip], "higher q wins");
        assert_eq!(
            accepted([&b"gzip;q=0.2"[..], &b"br;q=0.1"[..]]),
            vec![Gzip, Brotli],
            "two field lines"
        );
    }
}
