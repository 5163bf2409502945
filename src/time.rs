//! Calendar arithmetic on unix seconds (UTC, proleptic Gregorian; H. Hinnant's algorithms), for
//! HTTP dates (hmac-auth: parsed as nginx does) and calendar windows (rate-limiting).

/// Days since 1970-01-01 -> (year, month 1..=12, day 1..=31).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// (year, month 1..=12, day) -> days since 1970-01-01; dates before 1970 give 0.
pub fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year.saturating_sub(1) } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day.saturating_sub(1);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// The IMF-fixdate of unix seconds `t`, e.g. `Thu, 01 Jan 2026 00:00:00 GMT` (for clients and
/// tests that sign hmac requests).
pub fn http_date(t: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = t / 86_400;
    let secs = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    let weekday = WEEKDAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month = MONTHS.get(m.saturating_sub(1) as usize).copied().unwrap_or("Jan");
    format!("{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// nginx's `ngx_parse_http_time`: RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). Unix seconds.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    enum Format {
        Rfc822,
        Rfc850,
        Isoc,
    }
    let end = value.len();
    let mut p = 0;
    let mut format = Format::Rfc822;
    while p < end {
        match value.get(p)? {
            b',' => break,
            b' ' => {
                format = Format::Isoc;
                break;
            }
            _ => p += 1,
        }
    }
    p += 1;
    while value.get(p) == Some(&b' ') {
        p += 1;
    }
    let digit = |i: usize| -> Option<u64> {
        let b = *value.get(i)?;
        b.is_ascii_digit().then(|| u64::from(b - b'0'))
    };
    let two = |i: usize| -> Option<u64> { Some(digit(i)? * 10 + digit(i + 1)?) };
    let month_at = |i: usize| -> Option<u64> {
        const MONTHS: [&[u8; 3]; 12] =
            [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
        let m = value.get(i..i + 3)?;
        MONTHS.iter().position(|n| n.as_slice() == m).map(|i| i as u64)
    };

    let day;
    let month;
    if matches!(format, Format::Isoc) {
        month = month_at(p)?;
        p += 3;
        if value.get(p) != Some(&b' ') {
            return None;
        }
        p += 1;
        if value.get(p) == Some(&b' ') {
            p += 1;
        }
        day = match digit(p + 1) {
            Some(_) => {
                let d = two(p)?;
                p += 2;
                d
            }
            None => {
                let d = digit(p)?;
                p += 1;
                d
            }
        };
        if value.get(p) != Some(&b' ') {
            return None;
        }
        p += 1;
    } else {
        day = two(p)?;
        p += 2;
        match value.get(p) {
            Some(b' ') => {}
            Some(b'-') => format = Format::Rfc850,
            _ => return None,
        }
        p += 1;
        month = month_at(p)?;
        p += 3;
        let sep = if matches!(format, Format::Rfc850) { b'-' } else { b' ' };
        if value.get(p) != Some(&sep) {
            return None;
        }
        p += 1;
    }

    let mut year = 0;
    match format {
        Format::Rfc822 => {
            year = two(p)? * 100 + two(p + 2)?;
            p += 4;
        }
        Format::Rfc850 => {
            year = two(p)?;
            year += if year < 70 { 2000 } else { 1900 };
            p += 2;
        }
        Format::Isoc => {}
    }
    if !matches!(format, Format::Isoc) {
        if value.get(p) != Some(&b' ') {
            return None;
        }
        p += 1;
    }
    let hour = two(p)?;
    if value.get(p + 2) != Some(&b':') {
        return None;
    }
    let min = two(p + 3)?;
    if value.get(p + 5) != Some(&b':') {
        return None;
    }
    let sec = two(p + 6)?;
    p += 8;
    if matches!(format, Format::Isoc) {
        if value.get(p) != Some(&b' ') {
            return None;
        }
        p += 1;
        year = two(p)? * 100 + two(p + 2)?;
    }

    if hour > 23 || min > 59 || sec > 59 || day == 0 || year < 1970 {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    const MDAY: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let max_day = if month == 1 && leap { 29 } else { *MDAY.get(month as usize)? };
    if day > max_day {
        return None;
    }
    Some(days_from_civil(year, month + 1, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        for days in [0, 59, 60, 365, 10_956, 20_454, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(http_date(1_767_225_600), "Thu, 01 Jan 2026 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(days_from_civil(1969, 12, 31), 0);
    }

    #[test]
    fn http_dates_like_nginx() {
        let t = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date(b"Thu, 01 Jan 2026 00:00:00 GMT"), Some(1_767_225_600));
        assert_eq!(parse_http_date(b"Thu, 29 Feb 2024 12:00:00 GMT"), Some(1_709_208_000));
        assert_eq!(parse_http_date(b"Wed, 29 Feb 2023 12:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Thu, 01 Jan 2026 24:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Thu, 01 Foo 2026 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"2026-01-01T00:00:00Z"), None);
        assert_eq!(parse_http_date(b""), None);
        assert_eq!(parse_http_date(b"Thu, 1"), None);
        assert_eq!(parse_http_date(b"1767225600"), None);
    }
}
