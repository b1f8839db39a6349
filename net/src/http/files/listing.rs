//! The directory listing (`autoindex`), shaped like nginx's: an HTML page with one
//! line per entry, directories first, then by name (bytewise); links percent-encoded,
//! names HTML-escaped; hidden entries left out unless allowed. Rendered on the
//! worker's helper thread (reading a directory may block).

use std::fmt::Write as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Most entries listed; a larger directory is cut there, with a last line saying
/// so, which bounds the memory and time one request can cost.
pub const MAX_ENTRIES: usize = 10_000;

/// Appends `s` HTML-escaped.
fn escape_html(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Appends `name` percent-encoded for a relative link: unreserved characters stay,
/// every other byte becomes `%XX` (so `:` cannot start a scheme and `?`/`#` cannot
/// cut the path).
fn encode_link(out: &mut String, name: &[u8]) {
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Renders the listing of `dir`, shown as `shown` (the decoded request path).
///
/// # Errors
/// The directory cannot be read.
pub fn render(dir: &Path, shown: &str, allow_hidden: bool) -> std::io::Result<Vec<u8>> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !allow_hidden && name.as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        // Follows symlinks, as nginx does; an entry that vanished or dangles is
        // listed as a file of unknown size.
        let meta = std::fs::metadata(entry.path()).ok();
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        let size = meta.as_ref().filter(|m| m.is_file()).map(|m| m.len());
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        entries.push((!is_dir, name, size, mtime));
    }
    entries
        .sort_unstable_by(|a, b| (a.0, a.1.as_encoded_bytes()).cmp(&(b.0, b.1.as_encoded_bytes())));
    let mut html = String::with_capacity(256 + entries.len() * 100);
    html.push_str("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Index of ");
    escape_html(&mut html, shown);
    html.push_str("</title></head>\n<body>\n<h1>Index of ");
    escape_html(&mut html, shown);
    html.push_str("</h1><hr><pre><a href=\"../\">../</a>\n");
    for (is_file, name, size, mtime) in &entries {
        let slash = if *is_file { "" } else { "/" };
        html.push_str("<a href=\"");
        encode_link(&mut html, name.as_encoded_bytes());
        html.push_str(slash);
        html.push_str("\">");
        escape_html(&mut html, &name.to_string_lossy());
        html.push_str(slash);
        html.push_str("</a> ");
        match mtime {
            Some(t) => html.push_str(&String::from_utf8_lossy(&crate::http::format_http_date(*t))),
            None => html.push('-'),
        }
        match size {
            Some(n) => {
                let _ = writeln!(html, " {n}");
            }
            None => html.push_str(" -\n"),
        }
    }
    if truncated {
        let _ = writeln!(html, "(listing cut at {MAX_ENTRIES} entries)");
    }
    html.push_str("</pre><hr></body>\n</html>\n");
    Ok(html.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_links() {
        let mut s = String::new();
        escape_html(&mut s, "<a href='x'>&\"");
        assert_eq!(s, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
        let mut l = String::new();
        encode_link(&mut l, "a b?#:é/".as_bytes());
        assert_eq!(l, "a%20b%3F%23%3A%C3%A9%2F");
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mkdir, readdir: syscalls
    fn sorted_dirs_first_hidden_left_out() {
        let dir = std::env::temp_dir().join(format!("ringcore-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("zdir")).unwrap();
        for f in ["b.txt", "a <x>.txt", ".hidden"] {
            std::fs::write(dir.join(f), b"12345").unwrap();
        }
        let html = String::from_utf8(render(&dir, "/d<ir>/", false).unwrap()).unwrap();
        assert!(
            html.contains("<title>Index of /d&lt;ir&gt;/</title>"),
            "{html}"
        );
        let z = html.find("href=\"zdir/\"").expect("zdir");
        let a = html
            .find("href=\"a%20%3Cx%3E.txt\">a &lt;x&gt;.txt</a>")
            .expect("a");
        let b = html.find("href=\"b.txt\"").expect("b");
        assert!(z < a && a < b, "{html}");
        assert!(!html.contains("hidden"));
        assert!(html.contains(" 5\n"), "sizes: {html}");
        let all = String::from_utf8(render(&dir, "/", true).unwrap()).unwrap();
        assert!(all.contains("href=\".hidden\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
