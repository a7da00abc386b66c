//! The school's timetable and weekly bookings, in the school's own time: "Tuesday 10:00" is 10:00
//! by the school's clocks every week, also across the changes between winter and summer time.
//! A timetable file is what an MIS exports: CSV with room, day, start, end and teacher columns,
//! in any order, with a header row.

use crate::domain::roster::LineError;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::Serialize;

/// One lesson of the timetable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lesson {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub room: String,
    /// Monday, Tuesday, ...
    pub day: String,
    /// "HH:MM", the school's time.
    pub start: String,
    pub end: String,
    /// The teacher's username (or the email the roster made it from).
    pub teacher: String,
}

fn weekday(name: &str) -> Option<Weekday> {
    let n = name.trim().to_ascii_lowercase();
    let days = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    days.iter()
        .find(|(full, _)| n == *full || (n.len() == 3 && full.starts_with(&n)))
        .map(|(_, d)| *d)
}

fn time(text: &str) -> Option<Time> {
    let (h, m) = text.trim().split_once(':')?;
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// The longest lesson a timetable or a booking may have, in minutes (a double lesson and more).
pub const LONGEST_MINUTES: i64 = 4 * 60;
/// The most weeks a weekly booking or a timetable import repeats (a school year).
pub const MOST_WEEKS: u32 = 40;
/// The most bookings one teacher may hold in one room from now on (a lesson a day for the
/// school year, twice over): one teacher cannot fill a room, or its device's list.
pub const MOST_BOOKINGS_PER_ROOM: i64 = 400;

/// A time as the school reads it: "2026-12-08 10:00".
pub fn school_time(tz: &TimeZone, ts: i64) -> String {
    Timestamp::from_second(ts)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// Parses a timetable file: the good lessons, and one error per bad line.
pub fn parse(text: &str) -> (Vec<Lesson>, Vec<LineError>) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return (
                Vec::new(),
                vec![LineError {
                    line: 1,
                    message: format!("the header row cannot be read: {e}"),
                }],
            )
        }
    };
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(room), Some(day), Some(start), Some(end), Some(teacher)) = (
        column("room"),
        column("day"),
        column("start"),
        column("end"),
        column("teacher"),
    ) else {
        return (
            Vec::new(),
            vec![LineError {
                line: 1,
                message: "the header row needs the columns room, day, start, end and teacher"
                    .into(),
            }],
        );
    };
    let (mut lessons, mut errors) = (Vec::new(), Vec::new());
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(LineError {
                    line,
                    message: format!("cannot be read: {e}"),
                });
                continue;
            }
        };
        let field = |i: usize| record.get(i).unwrap_or("").trim().to_string();
        let lesson = Lesson {
            line,
            room: field(room),
            day: field(day),
            start: field(start),
            end: field(end),
            teacher: field(teacher),
        };
        let problem = if lesson.room.is_empty() || lesson.teacher.is_empty() {
            Some("needs a room and a teacher".to_string())
        } else if weekday(&lesson.day).is_none() {
            Some(format!("{:?} is not a day of the week", lesson.day))
        } else {
            match (time(&lesson.start), time(&lesson.end)) {
                (Some(s), Some(e)) if s < e && (e - s).get_minutes() <= LONGEST_MINUTES => None,
                (Some(_), Some(_)) => Some(format!(
                    "{} to {} is not a lesson (it ends after it starts, within 4 hours)",
                    lesson.start, lesson.end
                )),
                _ => Some(format!(
                    "the times {:?} and {:?} are not HH:MM",
                    lesson.start, lesson.end
                )),
            }
        };
        match problem {
            Some(message) => errors.push(LineError { line, message }),
            None => lessons.push(lesson),
        }
    }
    (lessons, errors)
}

/// The slots (Unix seconds) of `lesson` in the `weeks` weeks from `first` on.
pub fn slots(tz: &TimeZone, lesson: &Lesson, first: Date, weeks: u32) -> Vec<(i64, i64)> {
    let (Some(day), Some(start), Some(end)) =
        (weekday(&lesson.day), time(&lesson.start), time(&lesson.end))
    else {
        return Vec::new();
    };
    let offset = (i64::from(day.to_monday_zero_offset())
        - i64::from(first.weekday().to_monday_zero_offset()))
    .rem_euclid(7);
    let Ok(date) = first.checked_add(Span::new().days(offset)) else {
        return Vec::new();
    };
    (0..i64::from(weeks))
        .filter_map(|w| {
            let d = date.checked_add(Span::new().weeks(w)).ok()?;
            let at = |t: Time| {
                Some(
                    d.to_datetime(t)
                        .to_zoned(tz.clone())
                        .ok()?
                        .timestamp()
                        .as_second(),
                )
            };
            Some((at(start)?, at(end)?))
        })
        .collect()
}

/// A slot repeated every week for `weeks` weeks, at the same time of day in the school's time
/// zone (so across a clock change it moves by the hour the clocks do).
pub fn weekly(tz: &TimeZone, starts_at: i64, ends_at: i64, weeks: u32) -> Vec<(i64, i64)> {
    let local = |t: i64| {
        Some(
            Timestamp::from_second(t)
                .ok()?
                .to_zoned(tz.clone())
                .datetime(),
        )
    };
    let (Some(s), Some(e)) = (local(starts_at), local(ends_at)) else {
        return Vec::new();
    };
    (0..i64::from(weeks))
        .filter_map(|w| {
            let at = |dt: jiff::civil::DateTime| {
                Some(
                    dt.checked_add(Span::new().weeks(w))
                        .ok()?
                        .to_zoned(tz.clone())
                        .ok()?
                        .timestamp()
                        .as_second(),
                )
            };
            Some((at(s)?, at(e)?))
        })
        .collect()
}

/// The date today in the school's time zone.
pub fn today(tz: &TimeZone, now: i64) -> Option<Date> {
    Some(
        Timestamp::from_second(now)
            .ok()?
            .to_zoned(tz.clone())
            .date(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_bad_line_by_number() {
        let (lessons, errors) = parse(
            "Room,Day,Start,End,Teacher\n\
             room-12,Tuesday,10:00,11:00,alice\n\
             room-12,Funday,10:00,11:00,alice\n\
             room-12,Wed,11:00,10:00,bob\n\
             ,Thu,09:00,10:00,bob\n\
             room-3,fri,9.00,10:00,bob\n",
        );
        assert_eq!(lessons.len(), 1);
        assert_eq!(lessons[0].room, "room-12");
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
        assert!(errors[0].message.contains("Funday"));
        let (_, errors) = parse("Room,Day,Teacher\nroom-1,Mon,alice\n");
        assert_eq!(errors[0].line, 1);
    }

    #[test]
    fn weekly_lessons_keep_the_schools_time_across_the_clock_change() {
        let tz = TimeZone::get("Europe/London").unwrap();
        // Tuesday 10:00 from Tuesday 20 October 2026, three weeks: the clocks go back on
        // Sunday 25 October, so the first is 09:00 UTC and the others 10:00 UTC.
        let lesson = Lesson {
            line: 2,
            room: "room-12".into(),
            day: "Tuesday".into(),
            start: "10:00".into(),
            end: "11:00".into(),
            teacher: "alice".into(),
        };
        let first = Date::new(2026, 10, 19).unwrap();
        let got = slots(&tz, &lesson, first, 3);
        let utc = |s: i64| Timestamp::from_second(s).unwrap().to_string();
        assert_eq!(
            got.iter().map(|(s, _)| utc(*s)).collect::<Vec<_>>(),
            [
                "2026-10-20T09:00:00Z",
                "2026-10-27T10:00:00Z",
                "2026-11-03T10:00:00Z"
            ]
        );
        assert!(got.iter().all(|(s, e)| e - s == 3600));
        // A booking repeated weekly moves with the clocks the same way.
        let again = weekly(&tz, got[0].0, got[0].1, 3);
        assert_eq!(again, got);
    }
}
