//! Durations as operators write them on command lines: with a unit, or a plain number of
//! seconds; bounded to what each option can honour.

use std::time::Duration;

/// A duration with a unit (`30s`, `5m`, `250ms`), or a plain number of seconds as `timeout`
/// takes it (`4`, `0.5`).
pub fn duration(s: &str) -> Result<Duration, String> {
    if let Ok(seconds) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{s} is not a number of seconds from 0 up"));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("{e} (give a number of seconds, or a number and a unit: 30s, 5m, 250ms)")
    })
}

/// A [`duration`] from `min` to `max`: each option's range says what the tool can honour
/// (a 0 s interval is no interval; a 1 ns one is a loop burning a CPU).
pub fn duration_within(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let value = duration(s)?;
    if value < min || value > max {
        return Err(format!(
            "{s} is out of range: from {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(value)
}

pub const HOUR: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_plain_seconds_or_a_unit() {
        assert_eq!(duration("4"), Ok(Duration::from_secs(4)));
        assert_eq!(duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("-1").unwrap_err().contains("seconds"));
        assert!(duration("4 apples").unwrap_err().contains("30s, 5m"));
    }
}
