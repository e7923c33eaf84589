//! Value syntaxes as etcd's Go parses them, so that a value etcd accepts means the same here:
//! integers (`strconv` base 0: `0x10`, `0o17`, `0b1`, `1_000`, and a leading `0` is octal),
//! booleans (`strconv.ParseBool`), durations (`time.ParseDuration`, and `Duration.String` to
//! print them) and URLs (`types.NewURLs`: scheme http/https/unix/unixs, `host:port`, no path).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Go's `flag` package reports these two reasons for a bad number.
const PARSE_ERROR: &str = "parse error";
const RANGE_ERROR: &str = "value out of range";

/// `strconv.ParseUint(s, 0, 64)`.
pub(crate) fn parse_uint(s: &str) -> Result<u64, &'static str> {
    let (digits, radix) = split_radix(s)?;
    u64::from_str_radix(&digits, radix).map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => RANGE_ERROR,
        _ => PARSE_ERROR,
    })
}

/// `strconv.ParseInt(s, 0, 64)`.
pub(crate) fn parse_int(s: &str) -> Result<i64, &'static str> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = parse_uint(rest)?;
    if neg {
        0i64.checked_sub_unsigned(magnitude).ok_or(RANGE_ERROR)
    } else {
        i64::try_from(magnitude).map_err(|_| RANGE_ERROR)
    }
}

/// Strips Go's base prefix and digit-separating underscores.
fn split_radix(s: &str) -> Result<(String, u32), &'static str> {
    let b = s.as_bytes();
    let (radix, body, prefixed) = match b {
        [b'0', b'x' | b'X', ..] => (16, &s[2..], true),
        [b'0', b'o' | b'O', ..] => (8, &s[2..], true),
        [b'0', b'b' | b'B', ..] => (2, &s[2..], true),
        [b'0', _, ..] => (8, &s[1..], true),
        _ => (10, s, false),
    };
    // An underscore must sit between digits (or right after a base prefix).
    let mut out = String::with_capacity(body.len());
    let mut prev_digit = prefixed;
    let mut last_underscore = false;
    for c in body.chars() {
        if c == '_' {
            if !prev_digit {
                return Err(PARSE_ERROR);
            }
            prev_digit = false;
            last_underscore = true;
        } else {
            out.push(c);
            prev_digit = true;
            last_underscore = false;
        }
    }
    if out.is_empty() || last_underscore || !out.chars().all(|c| c.is_digit(radix)) {
        return Err(PARSE_ERROR);
    }
    Ok((out, radix))
}

/// `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Result<bool, &'static str> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(PARSE_ERROR),
    }
}

/// `time.ParseDuration`, with Go's error messages; negative durations are refused (no setting
/// takes one).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut ns = int.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Go keeps the fraction's leading digits that fit; 18 is plenty for nanoseconds.
            let digits = &frac_part[..frac_part.len().min(18)];
            let f: u128 = digits.parse().map_err(|_| invalid())?;
            ns += f * scale / 10u128.pow(digits.len() as u32);
        }
        total = total.checked_add(ns).ok_or_else(invalid)?;
        // Go's Duration is an int64 of nanoseconds.
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
        rest = after;
    }
    if neg && total > 0 {
        return Err(format!("negative duration {s:?}"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Go's `Duration.String`: `0s`, `1.5ms`, `100ms`, `1m30s`, `1h0m0s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let frac = |v: u128, unit: u128| {
        let (int, rem) = (v / unit, v % unit);
        if rem == 0 {
            int.to_string()
        } else {
            let width = unit.ilog10() as usize;
            let digits = format!("{rem:0width$}");
            format!("{int}.{}", digits.trim_end_matches('0'))
        }
    };
    match ns {
        0 => "0s".to_string(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{}µs", frac(ns, 1_000)),
        1_000_000..=999_999_999 => format!("{}ms", frac(ns, 1_000_000)),
        _ => {
            let minutes = ns / 60_000_000_000;
            let secs = frac(ns % 60_000_000_000, 1_000_000_000);
            let (h, m) = (minutes / 60, minutes % 60);
            if h > 0 {
                format!("{h}h{m}m{secs}s")
            } else if m > 0 {
                format!("{m}m{secs}s")
            } else {
                format!("{secs}s")
            }
        }
    }
}

/// One URL of a `--listen-*` or `--advertise-*` list, in etcd's accepted form
/// `scheme://host:port`: nothing else (no path, query or user) is meaningful to etcd.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Url {
    /// `http`, `https`, `unix` or `unixs` (lower case).
    pub scheme: String,
    /// A host name, an IPv4 address or an IPv6 address (without brackets). With `unix`/`unixs`
    /// `host:port` names the socket file, as in etcd.
    pub host: String,
    /// The port; `None` for etcd's (legal, odd) empty port in `http://host:`.
    pub port: Option<u16>,
}

impl Url {
    /// `host:port` as a listener binds it (`[::1]:2379` for IPv6).
    pub fn host_port(&self) -> String {
        let port = self.port.map(|p| p.to_string()).unwrap_or_default();
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }

    /// `https` or `unixs`.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https" || self.scheme == "unixs"
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host_port())
    }
}

/// One URL by etcd's rules (`types.NewURLs`), with its messages.
pub(crate) fn parse_url(input: &str) -> Result<Url, String> {
    let s = input.trim();
    let bad_scheme = || format!("URL scheme must be http, https, unix, or unixs: {s}");
    let (scheme, rest) = s.split_once("://").ok_or_else(bad_scheme)?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(bad_scheme());
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() {
        return Err(format!("URL must not contain a path: {s}"));
    }
    if authority.contains('@') {
        return Err(format!("URL must not contain user information: {s}"));
    }
    let not_host_port = || format!("URL address does not have the form \"host:port\": {s}");
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(not_host_port)?;
        (host, after.strip_prefix(':').ok_or_else(not_host_port)?)
    } else {
        let (host, port) = authority.rsplit_once(':').ok_or_else(not_host_port)?;
        if host.contains(':') {
            return Err(not_host_port());
        }
        (host, port)
    };
    let port = if port.is_empty() {
        None
    } else {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port \":{port}\" after host: {s}"));
        }
        Some(
            port.parse::<u16>()
                .map_err(|_| format!("port out of range: {s}"))?,
        )
    };
    Ok(Url {
        scheme,
        host: host.to_string(),
        port,
    })
}

/// A comma-separated URL list, sorted and without duplicates (etcd's `UniqueURLs` flag).
pub(crate) fn parse_urls(s: &str) -> Result<Vec<Url>, String> {
    let mut urls = s.split(',').map(parse_url).collect::<Result<Vec<_>, _>>()?;
    // etcd sorts by the URL's string form.
    urls.sort_by_key(|u| u.to_string());
    urls.dedup();
    Ok(urls)
}

pub(crate) fn join_urls(urls: &[Url]) -> String {
    urls.iter()
        .map(Url::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// etcd's `checkBindURLs`: a listener binds an IP or `localhost`, never a name to resolve.
pub(crate) fn bindable(url: &Url) -> bool {
    url.scheme.starts_with("unix") || url.host == "localhost" || url.host.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_integers() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("100", 100),
            ("0x10", 16),
            ("0X1f", 31),
            ("0o17", 15),
            ("017", 15),
            ("0b101", 5),
            ("1_000", 1000),
            ("0x_ff", 255),
            ("18446744073709551615", u64::MAX),
        ];
        for (s, want) in ok {
            assert_eq!(parse_uint(s), Ok(*want), "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("", PARSE_ERROR),
            ("abc", PARSE_ERROR),
            ("-1", PARSE_ERROR),
            ("1.5", PARSE_ERROR),
            ("08", PARSE_ERROR),
            ("_1", PARSE_ERROR),
            ("1__0", PARSE_ERROR),
            ("1_", PARSE_ERROR),
            ("0x", PARSE_ERROR),
            ("18446744073709551616", RANGE_ERROR),
        ];
        for (s, want) in bad {
            assert_eq!(parse_uint(s), Err(*want), "{s}");
        }
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("-0x10"), Ok(-16));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), Err(RANGE_ERROR));
    }

    #[test]
    fn go_durations() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("100ms", Duration::from_millis(100)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("2us", Duration::from_micros(2)),
            ("2µs", Duration::from_micros(2)),
            ("10ns", Duration::from_nanos(10)),
            ("+5m", Duration::from_secs(300)),
            ("-0s", Duration::ZERO),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s).as_ref(), Ok(want), "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "time: invalid duration \"\""),
            ("abc", "time: invalid duration \"abc\""),
            ("1", "time: missing unit in duration \"1\""),
            ("-1", "time: missing unit in duration \"-1\""),
            ("1.5", "time: missing unit in duration \"1.5\""),
            ("5x", "time: unknown unit \"x\" in duration \"5x\""),
            ("-1h", "negative duration \"-1h\""),
            ("3000000h", "time: invalid duration \"3000000h\""),
        ];
        for (s, want) in bad {
            assert_eq!(parse_duration(s).unwrap_err(), *want, "{s}");
        }
    }

    #[test]
    fn go_duration_strings() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(90_500), "1m30.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5 * 3600 + 61), "5h1m1s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(*d), *want);
            assert_eq!(parse_duration(want).ok(), Some(*d), "round trip {want}");
        }
    }

    #[test]
    fn etcd_url_rules() {
        let u = parse_url("http://127.0.0.1:2379").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            ("http", "127.0.0.1", Some(2379))
        );
        assert_eq!(
            parse_url("HTTPS://[::1]:2379").unwrap().to_string(),
            "https://[::1]:2379"
        );
        assert_eq!(
            parse_url("unix://localhost:12345").unwrap().host_port(),
            "localhost:12345"
        );
        assert_eq!(parse_url(" http://localhost: ").unwrap().port, None);
        let bad: &[(&str, &str)] = &[
            (
                "localhost:2379",
                "URL scheme must be http, https, unix, or unixs: localhost:2379",
            ),
            (
                "ftp://a:1",
                "URL scheme must be http, https, unix, or unixs: ftp://a:1",
            ),
            (
                "http://a",
                "URL address does not have the form \"host:port\": http://a",
            ),
            (
                "http://::1:2379",
                "URL address does not have the form \"host:port\": http://::1:2379",
            ),
            ("http://a:1/", "URL must not contain a path: http://a:1/"),
            (
                "http://a:1/v2",
                "URL must not contain a path: http://a:1/v2",
            ),
            ("http://a:b", "invalid port \":b\" after host: http://a:b"),
            ("http://a:70000", "port out of range: http://a:70000"),
            ("", "URL scheme must be http, https, unix, or unixs: "),
        ];
        for (s, want) in bad {
            assert_eq!(parse_url(s).unwrap_err(), *want, "{s}");
        }
        let list = parse_urls("http://b:1,http://a:1,http://b:1").unwrap();
        assert_eq!(join_urls(&list), "http://a:1,http://b:1");
    }
}
