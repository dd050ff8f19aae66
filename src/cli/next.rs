//! `jobsctl next <id>`: the next slots in the job's zone and in UTC, marking those a DST change moved
//! (`dst_gap`) or that fall in a repeated hour (`dst_fold`).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::entry::Ctx;
use super::output::{Report, Style, Table, local, relative, utc, zoned};
use crate::catalog::{Catalog, JobState};
use crate::error::{Error, Result};

/// 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
const LAST_PRINTABLE_MS: i64 = 253_402_300_799_999;

pub fn run(ctx: &Ctx, id: &str, count: usize, after: Option<DateTime<Utc>>) -> Result<Report> {
    let now = ctx.clock.now();
    let catalog = Catalog::open(&ctx.home, now)?;
    let job = catalog.job(id)?;
    let start = after.unwrap_or(now);
    if job.spec.is_none()
        && let Some(problem) = job.problems.first()
    {
        // Invalid with no last good version: it has no schedule to show, which is not "runs by hand".
        return Err(Error::InvalidSpec {
            id: id.to_owned(),
            path: job.row.spec_path.clone().into(),
            first_problem: problem.message.clone(),
        });
    }
    let Some(schedule) = &job.schedule else {
        let human = format!("{id} has no schedule: it runs only by hand (`jobsctl run {id}`)\n");
        return Ok(Report::ok(
            json!({ "id": id, "timezone": null, "slots": [] }),
            human,
        ));
    };
    let tz = schedule.timezone();
    let mut slots = schedule.slots_after(start, count);
    // RFC 3339 has four-digit years: the schedule ends for us where it could no longer be printed.
    slots.retain(|slot| slot.at.timestamp_millis() <= LAST_PRINTABLE_MS);

    let mut table = Table::new(vec!["LOCAL", "UTC", "IN", "NOTE"]);
    for slot in &slots {
        let note = match slot.note {
            Some(crate::schedule::DstNote::Gap) => {
                "dst_gap: the wall time did not exist; first instant after it"
            }
            Some(crate::schedule::DstNote::Fold) => "dst_fold: this wall time occurs twice today",
            None => "",
        };
        table.row(vec![
            (local(slot.at, tz), Style::Bold),
            (utc(slot.at), Style::Plain),
            (relative(slot.at, now), Style::Dim),
            (note.to_owned(), Style::Yellow),
        ]);
    }
    let mut human = format!("{id}: {} ({})\n", schedule.expression(), tz.name());
    human.push_str(&table.render(&ctx.out));
    let state = job.state();
    if state != JobState::Active {
        human.push_str(&ctx.out.paint(
            Style::Yellow,
            &format!(
                "note: the job is {}, so the scheduler will not fire these slots\n",
                state.as_str()
            ),
        ));
    }
    if slots.len() < count {
        human.push_str("no further slots\n");
    }
    let data = json!({
        "id": id,
        "timezone": tz.name(),
        "state": state.as_str(),
        "slots": slots.iter().map(|slot| json!({
            "local": zoned(slot.at, tz),
            "utc": slot.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "note": slot.note.map(|n| n.code()),
        })).collect::<Vec<_>>(),
    });
    Ok(Report::ok(data, human))
}
