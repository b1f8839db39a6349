//! The `Date` header: IMF-fixdate (RFC 9110 section 5.6.7), rendered at most once
//! per second, and the wall clock read at most once per second on the request path
//! ([`DateCache::tick`] with the loop turn's clock, [`turn_date`]).

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// The current `Date` value, re-rendered only when the second changes.
///
/// Keep one per worker (or per connection) and call [`DateCache::update`] with the
/// current time before writing responses; most calls are one comparison.
#[derive(Debug, Clone)]
pub struct DateCache {
    /// Whole seconds since the Unix epoch that `rendered` shows.
    secs: u64,
    /// INVARIANT: `format_http_date(secs)`.
    rendered: [u8; HTTP_DATE_LEN],
    /// The monotonic instant at which the wall clock enters the second after `secs`
    /// (as seen when the wall clock was last read); `None`: not known, the next
    /// [`tick`](Self::tick) reads the wall clock.
    next_second: Option<Instant>,
    /// The loop turn's clock given to the last [`tick`](Self::tick) (`None` for a
    /// cache made by [`new`](Self::new) and moved only by [`update`](Self::update)).
    turn: Option<Instant>,
}

impl DateCache {
    /// A cache showing `now`.
    pub fn new(now: SystemTime) -> Self {
        let secs = unix_secs(now);
        DateCache {
            secs,
            rendered: format_http_date(secs),
            next_second: None,
            turn: None,
        }
    }

    /// Moves the cache to the loop turn's clock `now` (monotonic, e.g. `Conn::now`)
    /// and reads the wall clock (`wall`, normally `SystemTime::now`) only when `now`
    /// reached the next second, so a worker reads it about once a second however many
    /// responses it writes. A step of the wall clock (NTP) shows at the next second.
    /// Returns whether it read the wall clock.
    pub fn tick(&mut self, now: Instant, wall: impl FnOnce() -> SystemTime) -> bool {
        self.turn = Some(now);
        if self.next_second.is_some_and(|t| now < t) {
            return false;
        }
        let w = wall();
        self.update(w);
        let into = w.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        // `w` was read after `now`, so this lands a little early, never late: the
        // Date never shows a second that already ended for longer than the turn.
        let left = Duration::from_secs(1) - Duration::from_nanos(u64::from(into));
        self.next_second = Some(now + left);
        true
    }

    /// The loop turn's clock of the last [`tick`](Self::tick): what the response
    /// statistics and the access log measure request durations with, so a request
    /// costs no clock read of its own (a response queued in the turn that parsed its
    /// head shows 0). `None` if the cache was never ticked.
    pub fn turn_clock(&self) -> Option<Instant> {
        self.turn
    }

    /// Whole seconds since the Unix epoch that the cache shows.
    pub fn unix_secs(&self) -> u64 {
        self.secs
    }

    /// Moves the cache to `now`; renders only if the second differs.
    pub fn update(&mut self, now: SystemTime) {
        let secs = unix_secs(now);
        if secs != self.secs {
            self.secs = secs;
            self.rendered = format_http_date(secs);
        }
    }

    /// The rendered date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn as_bytes(&self) -> &[u8; HTTP_DATE_LEN] {
        &self.rendered
    }
}

thread_local! {
    /// Per worker: the `Date` of [`turn_date`].
    static TURN_DATE: RefCell<DateCache> = RefCell::new(DateCache::new(SystemTime::now()));
}

/// The current `Date` for a response written in the loop turn whose clock is `now`
/// (`Conn::now`): one cache per worker thread, the wall clock read about once a
/// second ([`DateCache::tick`]). A copy, so no borrow is held while handlers run.
pub fn turn_date(now: Instant) -> DateCache {
    TURN_DATE.with(|d| {
        let mut d = d.borrow_mut();
        d.tick(now, SystemTime::now);
        d.clone()
    })
}

/// Seconds since the epoch; times before it show as the epoch.
fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Renders `secs` since the Unix epoch as an IMF-fixdate.
///
/// ```
/// # use ringcore_net::http::format_http_date;
/// assert_eq!(&format_http_date(784111777), b"Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn format_http_date(secs: u64) -> [u8; HTTP_DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];

    // Four-digit years only: later times show as the last second of 9999.
    let secs = secs.min(253_402_300_799);
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], of_day / 3600);
    two_digits(&mut out[20..22], of_day / 60 % 60);
    two_digits(&mut out[23..25], of_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`, restricted to non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod date_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let cases: [(u64, &[u8]); 6] = [
            (0, b"Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, b"Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, b"Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_251_199, b"Thu, 29 Feb 2024 23:59:59 GMT"),
            (4_102_444_800, b"Fri, 01 Jan 2100 00:00:00 GMT"),
            (253_402_300_799, b"Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(&format_http_date(secs)[..], want, "{secs}");
        }
    }

    #[test]
    fn cache_renders_once_per_second() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut cache = DateCache::new(t);
        cache.update(t + Duration::from_millis(999));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.update(t + Duration::from_secs(1));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        assert_eq!(
            DateCache::new(UNIX_EPOCH - Duration::from_secs(5)).as_bytes(),
            &format_http_date(0)
        );
    }

    /// The wall clock is read on the first tick, then only once the turn's clock
    /// reached the next second; the rendered date follows it.
    #[test]
    fn tick_reads_the_wall_clock_once_per_second() {
        let base = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let t0 = Instant::now();
        let reads = std::cell::Cell::new(0u32);
        // The wall clock is 250 ms into a second at t0.
        let wall_at = |t: Instant| {
            reads.set(reads.get() + 1);
            base + Duration::from_millis(250) + (t - t0)
        };
        let mut cache = DateCache::new(UNIX_EPOCH);
        assert_eq!(cache.turn_clock(), None);
        assert!(cache.tick(t0, || wall_at(t0)));
        assert_eq!(cache.turn_clock(), Some(t0));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(cache.unix_secs(), 784_111_777);
        // 10,000 turns within the same second: no read.
        for i in 0..10_000u64 {
            let t = t0 + Duration::from_nanos(i * 74_999);
            assert!(!cache.tick(t, || wall_at(t)), "turn {i}");
        }
        assert_eq!(reads.get(), 1);
        // The next second starts 750 ms after t0: read once, render it.
        let t = t0 + Duration::from_millis(750);
        assert!(cache.tick(t, || wall_at(t)));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        assert!(!cache.tick(t + Duration::from_millis(999), || wall_at(t)));
        assert_eq!(reads.get(), 2);
        // A wall clock stepped back an hour shows at the next second.
        let t = t0 + Duration::from_millis(1750);
        assert!(cache.tick(t, || wall_at(t) - Duration::from_secs(3600)));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 07:49:39 GMT");
    }

    #[test]
    fn turn_date_is_per_thread_and_current() {
        let now = SystemTime::now();
        let d = turn_date(Instant::now());
        let secs = unix_secs(now);
        assert!(d.unix_secs() >= secs && d.unix_secs() <= secs + 1);
    }
}
