//! The local day, defined once. Posbon's days and hours are those of
//! [`LOCAL_TIME_ZONE`]: SQL's `local_date` and its day segments, the daily
//! report's day, the risk engine's baselines by local hour and weekday
//! (checked against [`local_offset_minutes`] when its configuration loads),
//! the simulator's event times, and the page's clock (the API names the zone
//! in `/i18n.json`).

use chrono::{DateTime, NaiveDate, Offset as _, TimeZone as _, Utc};

/// The time zone of every local day and hour: Asia/Tashkent (Posbon serves
/// Uzbekistan).
pub const LOCAL_TIME_ZONE: chrono_tz::Tz = chrono_tz::Asia::Tashkent;

/// The zone's offset east of UTC in minutes: 300. Uzbekistan has kept
/// UTC+05:00 all year since 1992, so one fixed offset is exact for every time
/// Posbon stores (a unit test checks the zone's offsets from 1993 to 2040).
pub fn local_offset_minutes() -> i32 {
    let reference = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::days(365 * 40);
    LOCAL_TIME_ZONE
        .offset_from_utc_datetime(&reference.naive_utc())
        .fix()
        .local_minus_utc()
        / 60
}

/// The local date an instant falls on.
pub fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&LOCAL_TIME_ZONE).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_offset_is_fixed() {
        assert_eq!(local_offset_minutes(), 300);
        for year in 1993..=2040 {
            for month in [1, 4, 7, 10] {
                let t = Utc
                    .with_ymd_and_hms(year, month, 15, 12, 0, 0)
                    .single()
                    .expect("time");
                let offset = LOCAL_TIME_ZONE
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc();
                assert_eq!(offset, 300 * 60, "{t}");
            }
        }
    }

    #[test]
    fn a_local_day_starts_at_local_midnight() {
        let t = |h| {
            Utc.with_ymd_and_hms(2026, 12, 4, h, 0, 0)
                .single()
                .expect("time")
        };
        assert_eq!(
            local_date(t(18)),
            NaiveDate::from_ymd_opt(2026, 12, 4).expect("d")
        );
        assert_eq!(
            local_date(t(19)),
            NaiveDate::from_ymd_opt(2026, 12, 5).expect("d")
        );
    }
}
