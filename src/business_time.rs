//! Business time (DESIGN.md "SLA"): a clock under a calendar counts only the hours the calendar
//! is open, in its time zone, skipping its holidays; without a calendar it counts around the
//! clock. Instants are UTC `NaiveDateTime`s, as stored.

use std::collections::BTreeSet;

use chrono::{
    Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::code_enum;

/// No search goes further than this many days: policies whose targets a calendar cannot reach
/// within it are refused (`Calendar::reaches`), so a running clock always has a due time.
const HORIZON_DAYS: u64 = 20 * 366;

code_enum! {
    /// A day of the week.
    Weekday {
        Mon = "mon",
        Tue = "tue",
        Wed = "wed",
        Thu = "thu",
        Fri = "fri",
        Sat = "sat",
        Sun = "sun",
    }
}

/// One opening window of a weekday, in the calendar's local time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"weekday": "mon", "opens": "09:00", "closes": "18:00"}))]
pub struct OpeningHours {
    pub weekday: Weekday,
    /// `HH:MM`, 24-hour local time.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub opens: String,
    /// `HH:MM` after `opens`; `24:00` is midnight at the day's end.
    #[schema(pattern = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
    pub closes: String,
}

/// Why a calendar's definition was refused: (JSON pointer under the body, message).
pub type Problem = (String, String);

/// A business calendar ready to count with.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: Tz,
    /// Windows per weekday, Monday first, sorted and disjoint; a `None` close is midnight.
    week: [Vec<(NaiveTime, Option<NaiveTime>)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// Exactly `HH:MM`: chrono alone also takes ` 9:00` and `09: 5`.
fn time_of(text: &str) -> Option<NaiveTime> {
    let digit_at = |i: usize| text.as_bytes()[i].is_ascii_digit();
    let valid =
        text.len() == 5 && text.as_bytes()[2] == b':' && [0, 1, 3, 4].iter().all(|&i| digit_at(i));
    valid
        .then(|| NaiveTime::parse_from_str(text, "%H:%M").ok())
        .flatten()
}

impl Calendar {
    /// Checks and builds a calendar; every problem found, each with the body field it concerns.
    pub fn new(
        time_zone: &str,
        hours: &[OpeningHours],
        holidays: &[NaiveDate],
    ) -> Result<Calendar, Vec<Problem>> {
        let mut problems = Vec::new();
        let zone = time_zone.parse::<Tz>().map_err(|_| {
            vec![(
                "/time_zone".to_owned(),
                "not an IANA time zone name (e.g. `Europe/Rome`)".to_owned(),
            )]
        });
        let mut week: [Vec<(NaiveTime, Option<NaiveTime>)>; 7] = Default::default();
        for (i, window) in hours.iter().enumerate() {
            let opens = time_of(&window.opens);
            let closes = match window.closes.as_str() {
                "24:00" => Some(None),
                text => time_of(text).map(Some),
            };
            match (opens, closes) {
                (Some(opens), Some(closes)) if closes.is_none_or(|c| c > opens) => {
                    week[window.weekday.index()].push((opens, closes));
                }
                (None, _) => {
                    problems.push((format!("/hours/{i}/opens"), "must be `HH:MM`".to_owned()))
                }
                (_, None) => problems.push((
                    format!("/hours/{i}/closes"),
                    "must be `HH:MM` or `24:00`".to_owned(),
                )),
                _ => problems.push((
                    format!("/hours/{i}/closes"),
                    "must be after `opens`".to_owned(),
                )),
            }
        }
        for (day, windows) in week.iter_mut().enumerate() {
            windows.sort();
            let overlaps = windows
                .windows(2)
                .any(|pair| pair[0].1.is_none_or(|end| end > pair[1].0));
            if overlaps {
                problems.push((
                    "/hours".to_owned(),
                    format!("the windows of `{}` overlap", Weekday::ALL[day]),
                ));
            }
        }
        if problems.is_empty() && week.iter().all(Vec::is_empty) {
            problems.push((
                "/hours".to_owned(),
                "at least one opening window is required".to_owned(),
            ));
        }
        match zone {
            Ok(zone) if problems.is_empty() => Ok(Calendar {
                zone,
                week,
                holidays: holidays.iter().copied().collect(),
            }),
            Ok(_) => Err(problems),
            Err(mut zone) => {
                zone.append(&mut problems);
                Err(zone)
            }
        }
    }

    /// The UTC instant of a local date and time; a time skipped by a daylight-saving jump is
    /// the first minute after the jump, and a repeated one its first occurrence.
    fn instant(&self, day: NaiveDate, time: Option<NaiveTime>) -> NaiveDateTime {
        let local = match time {
            Some(time) => day.and_time(time),
            None => (day + Duration::days(1)).and_time(NaiveTime::MIN),
        };
        (0..=24 * 60)
            .find_map(|minute| {
                match self
                    .zone
                    .from_local_datetime(&(local + Duration::minutes(minute)))
                {
                    LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.naive_utc()),
                    LocalResult::None => None,
                }
            })
            .unwrap_or(local)
    }

    /// The open time that daylight-saving jumps take from the calendar's windows (a window in
    /// a skipped hour is shorter, or gone; a repeated hour is not counted as a gain), over the
    /// horizon from `from` and a year more, so that a clock started later loses no more than
    /// this. Only the days not 24 hours long are looked at closely: a few dozen in 21 years.
    fn lost_to_clock_changes(&self, from: NaiveDate) -> i64 {
        from.iter_days()
            .take(HORIZON_DAYS as usize + 366)
            .filter(|day| !self.holidays.contains(day))
            .filter(|&day| {
                self.instant(day, None) - self.instant(day, Some(NaiveTime::MIN))
                    != Duration::days(1)
            })
            .flat_map(|day| {
                let windows = &self.week[day.weekday().num_days_from_monday() as usize];
                windows.iter().map(move |window @ &(opens, closes)| {
                    let actual = self.instant(day, closes) - self.instant(day, Some(opens));
                    (nominal_secs(window) - actual.num_seconds()).max(0)
                })
            })
            .sum()
    }

    /// The calendar's open windows that end after `from`, in order, the first cut at `from`.
    fn windows(&self, from: NaiveDateTime) -> impl Iterator<Item = (NaiveDateTime, NaiveDateTime)> {
        // The day before `from`'s local date: a window of that day may still be open.
        let first = self.zone.from_utc_datetime(&from).date_naive() - Duration::days(1);
        first
            .iter_days()
            .take(HORIZON_DAYS as usize)
            .filter(|day| !self.holidays.contains(day))
            .flat_map(move |day| {
                let windows = &self.week[day.weekday().num_days_from_monday() as usize];
                windows.iter().map(move |&(opens, closes)| {
                    (self.instant(day, Some(opens)), self.instant(day, closes))
                })
            })
            .filter_map(move |(opens, closes)| {
                let opens = opens.max(from);
                (closes > opens).then_some((opens, closes))
            })
    }
}

/// A window's length on a day without a daylight-saving jump.
fn nominal_secs(&(opens, closes): &(NaiveTime, Option<NaiveTime>)) -> i64 {
    let secs_of = |t: NaiveTime| i64::from(t.num_seconds_from_midnight());
    closes.map_or(86_400, secs_of) - secs_of(opens)
}

/// How a clock counts time.
#[derive(Debug, Clone)]
pub enum Hours {
    AroundTheClock,
    Calendar(Calendar),
}

impl Hours {
    /// The instant `secs` seconds of business time after `from` (`from` itself for 0 or less);
    /// `None` past the search horizon.
    pub fn add(&self, from: NaiveDateTime, secs: i64) -> Option<NaiveDateTime> {
        let mut left = Duration::seconds(secs);
        if left <= Duration::zero() {
            return Some(from);
        }
        match self {
            Hours::AroundTheClock => from.checked_add_signed(left),
            Hours::Calendar(calendar) => {
                for (opens, closes) in calendar.windows(from) {
                    let open = closes - opens;
                    if left <= open {
                        return Some(opens + left);
                    }
                    left -= open;
                }
                None
            }
        }
    }

    /// Whole seconds of business time from `from` to `to` (0 when `to` is not after `from`).
    pub fn between(&self, from: NaiveDateTime, to: NaiveDateTime) -> i64 {
        if to <= from {
            return 0;
        }
        let span = match self {
            Hours::AroundTheClock => to - from,
            Hours::Calendar(calendar) => calendar
                .windows(from)
                .take_while(|(opens, _)| *opens < to)
                .map(|(opens, closes)| closes.min(to) - opens)
                .sum(),
        };
        span.num_seconds()
    }

    /// Whether `secs` seconds of business time fit within the search horizon from any start
    /// from `today` on.
    pub fn reaches(&self, secs: i64, today: NaiveDate) -> bool {
        match self {
            Hours::AroundTheClock => true,
            Hours::Calendar(calendar) => {
                // The open time of whole weeks within the horizon, less each holiday's own
                // weekday: never more than the search can find.
                let day: Vec<i64> = calendar
                    .week
                    .iter()
                    .map(|windows| windows.iter().map(nominal_secs).sum())
                    .collect();
                let weeks = (HORIZON_DAYS as i64 - 14) / 7;
                let holidays: i64 = calendar
                    .holidays
                    .iter()
                    .map(|d| day[d.weekday().num_days_from_monday() as usize])
                    .sum();
                let lost = calendar.lost_to_clock_changes(today);
                day.iter().sum::<i64>() * weeks - holidays - lost >= secs
            }
        }
    }
}

impl Weekday {
    /// Monday is 0.
    fn index(self) -> usize {
        Weekday::ALL.iter().position(|d| *d == self).unwrap_or(0)
    }
}
