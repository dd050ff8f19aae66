//! `jobsctl next <id>`: the next slots in the job's zone and in UTC, marking those a DST change moved
//! (`dst_gap`) or that fall in a repeated hour (`dst_fold`).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::Ctx;
use super::output::{Output, Report, Style, Table, View, Zoned, local, relative, ser, utc};
use crate::catalog::{Catalog, JobState};
use crate::error::{Error, Result};
use crate::schedule::DstNote;

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
        return Report::view(
            &NextView {
                id,
                timezone: None,
                state: None,
                slots: Vec::new(),
                schedule: None,
                count,
                now,
            },
            &ctx.out,
        );
    };
    let tz = schedule.timezone();
    let mut slots = schedule.slots_after(start, count);
    // RFC 3339 has four-digit years: the schedule ends for us where it could no longer be printed.
    slots.retain(|slot| slot.at.timestamp_millis() <= LAST_PRINTABLE_MS);
    let view = NextView {
        id,
        timezone: Some(tz),
        state: Some(job.state()),
        slots: slots
            .iter()
            .map(|slot| SlotEntry {
                local: Zoned { at: slot.at, tz },
                utc: slot.at,
                note: slot.note,
            })
            .collect(),
        schedule: Some(schedule.expression()),
        count,
        now,
    };
    Report::view(&view, &ctx.out)
}

/// The next slots of a job; without a schedule, none (and no state).
#[derive(Serialize)]
struct NextView<'a> {
    id: &'a str,
    #[serde(serialize_with = "ser::zone_opt")]
    timezone: Option<Tz>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser::job_state_opt"
    )]
    state: Option<JobState>,
    slots: Vec<SlotEntry>,
    /// The schedule's expression; none for a job that runs only by hand.
    #[serde(skip)]
    schedule: Option<String>,
    /// How many slots were asked for: fewer means the schedule ends.
    #[serde(skip)]
    count: usize,
    #[serde(skip)]
    now: DateTime<Utc>,
}

#[derive(Serialize)]
struct SlotEntry {
    local: Zoned,
    #[serde(serialize_with = "ser::instant_short")]
    utc: DateTime<Utc>,
    #[serde(serialize_with = "ser::dst_note")]
    note: Option<DstNote>,
}

impl View for NextView<'_> {
    fn render(&self, out: &Output) -> String {
        let id = self.id;
        let (Some(expression), Some(tz)) = (&self.schedule, self.timezone) else {
            return format!("{id} has no schedule: it runs only by hand (`jobsctl run {id}`)\n");
        };
        let mut table = Table::new(vec!["LOCAL", "UTC", "IN", "NOTE"]);
        for slot in &self.slots {
            let note = match slot.note {
                Some(DstNote::Gap) => {
                    "dst_gap: the wall time did not exist; first instant after it"
                }
                Some(DstNote::Fold) => "dst_fold: this wall time occurs twice today",
                None => "",
            };
            table.row(vec![
                (local(slot.utc, tz), Style::Bold),
                (utc(slot.utc), Style::Plain),
                (relative(slot.utc, self.now), Style::Dim),
                (note.to_owned(), Style::Yellow),
            ]);
        }
        let mut human = format!("{id}: {expression} ({})\n", tz.name());
        human.push_str(&table.render(out));
        if let Some(state) = self.state.filter(|state| *state != JobState::Active) {
            human.push_str(&out.paint(
                Style::Yellow,
                &format!(
                    "note: the job is {}, so the scheduler will not fire these slots\n",
                    state.as_str()
                ),
            ));
        }
        if self.slots.len() < self.count {
            human.push_str("no further slots\n");
        }
        human
    }
}
