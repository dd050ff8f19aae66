//! Lays the graph of jobs triggering jobs out for the dashboard: each job in the column of its
//! longest chain of upstreams, its place in the column by where its upstreams sit, each edge a
//! curve from the upstream's right side to the downstream's left. Pure numbers and strings a
//! template draws as SVG; must not read the home, the store or the clock.

use std::collections::HashMap;

/// Height of a job's box, and the gaps between columns and rows, in SVG units (pixels at 100 %).
const BOX_HEIGHT: u32 = 36;
const COLUMN_GAP: u32 = 90;
const ROW_GAP: u32 = 24;
const MARGIN: u32 = 16;
/// Names longer than this are cut in the box (the box's tooltip has them whole).
const LABEL_CHARS: usize = 28;

/// A job as the graph document names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub state: String,
}

/// An edge as the graph document names it: runs of `from` that end in one of `on` trigger `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub on: Vec<String>,
    /// Part of `to`'s `after_all`.
    pub all: bool,
}

/// The drawing: its size and what goes where.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawing {
    pub width: u32,
    pub height: u32,
    pub boxes: Vec<Placed>,
    pub curves: Vec<Curve>,
}

/// A job's box, top-left corner at (`x`, `y`).
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub id: String,
    pub state: String,
    pub label: String,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Where the label's baseline starts.
    pub text_x: u32,
    pub text_y: u32,
}

/// An edge's curve (an SVG path) and its label, drawn at (`label_x`, `label_y`) when not empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub from: String,
    pub to: String,
    pub path: String,
    pub label: String,
    pub label_x: u32,
    pub label_y: u32,
    pub all: bool,
}

/// Lays `jobs` and the `links` among them out. Links naming a job not in `jobs` are left out; a
/// cycle (the catalog never loads one) still ends, its jobs put in the first column.
pub fn lay_out(jobs: &[Job], links: &[Link]) -> Drawing {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| (job.id.as_str(), i))
        .collect();
    let links: Vec<(usize, usize, &Link)> = links
        .iter()
        .filter_map(|l| Some((*index.get(l.from.as_str())?, *index.get(l.to.as_str())?, l)))
        .filter(|(from, to, _)| from != to)
        .collect();
    let depth = depths(jobs.len(), &links);
    let columns = depth.iter().copied().max().map_or(0, |d| d + 1);

    // Column 0 in name order; each later column by the mean row of its upstreams, so an edge
    // tends to run straight across rather than over the others.
    let mut row = vec![0usize; jobs.len()];
    let mut column_sizes = Vec::with_capacity(columns);
    for column in 0..columns {
        let mut members: Vec<(f64, &str, usize)> = (0..jobs.len())
            .filter(|&i| depth[i] == column)
            .map(|i| {
                let ups: Vec<usize> = links
                    .iter()
                    .filter(|(_, to, _)| *to == i)
                    .map(|(from, _, _)| row[*from])
                    .collect();
                let weight = if column == 0 || ups.is_empty() {
                    0.0
                } else {
                    ups.iter().sum::<usize>() as f64 / ups.len() as f64
                };
                (weight, jobs[i].id.as_str(), i)
            })
            .collect();
        members.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        for (place, (_, _, i)) in members.iter().enumerate() {
            row[*i] = place;
        }
        column_sizes.push(members.len());
    }

    let longest = jobs
        .iter()
        .map(|j| j.id.chars().count().min(LABEL_CHARS + 1))
        .max()
        .unwrap_or(0);
    // About 7.5 units a character at the page's 13 px sans-serif, plus padding.
    let box_width = u32::try_from(longest * 15 / 2 + 24)
        .unwrap_or(u32::MAX)
        .max(96);
    let corner = |i: usize| {
        let x = MARGIN + u32::try_from(depth[i]).unwrap_or(0) * (box_width + COLUMN_GAP);
        let y = MARGIN + u32::try_from(row[i]).unwrap_or(0) * (BOX_HEIGHT + ROW_GAP);
        (x, y)
    };
    let boxes = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let (x, y) = corner(i);
            Placed {
                id: job.id.clone(),
                state: job.state.clone(),
                label: cut(&job.id),
                x,
                y,
                width: box_width,
                height: BOX_HEIGHT,
                text_x: x + 12,
                text_y: y + BOX_HEIGHT / 2 + 4,
            }
        })
        .collect();
    let curves = links
        .iter()
        .map(|(from, to, link)| {
            let (fx, fy) = corner(*from);
            let (tx, ty) = corner(*to);
            let (x1, y1) = (fx + box_width, fy + BOX_HEIGHT / 2);
            // The arrowhead ends at the box's edge.
            let (x2, y2) = (tx.saturating_sub(2), ty + BOX_HEIGHT / 2);
            let bend = x2.abs_diff(x1) / 2;
            Curve {
                from: link.from.clone(),
                to: link.to.clone(),
                path: format!(
                    "M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}",
                    x1 + bend,
                    x2.saturating_sub(bend)
                ),
                label: label(link),
                label_x: x1.midpoint(x2),
                label_y: y1.midpoint(y2).saturating_sub(6),
                all: link.all,
            }
        })
        .collect();
    let tallest = column_sizes.iter().copied().max().unwrap_or(0);
    let width = 2 * MARGIN + u32::try_from(columns).unwrap_or(0) * (box_width + COLUMN_GAP)
        - if columns > 0 { COLUMN_GAP } else { 0 };
    let height = 2 * MARGIN + u32::try_from(tallest).unwrap_or(0) * (BOX_HEIGHT + ROW_GAP)
        - if tallest > 0 { ROW_GAP } else { 0 };
    Drawing {
        width,
        height,
        boxes,
        curves,
    }
}

/// Each job's column: the length of its longest chain of upstreams (Kahn's order, so linear in the
/// edges). Jobs on a cycle never become ready and stay in column 0.
fn depths(jobs: usize, links: &[(usize, usize, &Link)]) -> Vec<usize> {
    let mut waiting = vec![0usize; jobs];
    for (_, to, _) in links {
        waiting[*to] += 1;
    }
    let mut depth = vec![0usize; jobs];
    let mut ready: Vec<usize> = (0..jobs).filter(|&i| waiting[i] == 0).collect();
    while let Some(job) = ready.pop() {
        for (from, to, _) in links {
            if *from != job {
                continue;
            }
            depth[*to] = depth[*to].max(depth[job] + 1);
            waiting[*to] -= 1;
            if waiting[*to] == 0 {
                ready.push(*to);
            }
        }
    }
    for (i, left) in waiting.iter().enumerate() {
        if *left > 0 {
            depth[i] = 0;
        }
    }
    depth
}

/// What the curve says: nothing for the default (`on: [succeeded]`), `all` for a fan-in, else the
/// outcomes.
fn label(link: &Link) -> String {
    if link.all {
        "all succeeded".to_owned()
    } else if link.on == ["succeeded"] {
        String::new()
    } else {
        link.on.join(", ")
    }
}

fn cut(id: &str) -> String {
    if id.chars().count() <= LABEL_CHARS {
        return id.to_owned();
    }
    let mut cut: String = id.chars().take(LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            state: "active".into(),
        }
    }

    fn link(from: &str, to: &str) -> Link {
        Link {
            from: from.into(),
            to: to.into(),
            on: vec!["succeeded".into()],
            all: false,
        }
    }

    fn placed<'a>(d: &'a Drawing, id: &str) -> &'a Placed {
        d.boxes.iter().find(|b| b.id == id).expect("placed")
    }

    #[test]
    fn a_chain_runs_left_to_right_and_everything_fits_the_canvas() {
        let jobs = [job("c"), job("a"), job("b")];
        let d = lay_out(&jobs, &[link("a", "b"), link("b", "c")]);
        let (a, b, c) = (placed(&d, "a"), placed(&d, "b"), placed(&d, "c"));
        assert!(a.x < b.x && b.x < c.x);
        assert_eq!((a.y, b.y, c.y), (MARGIN, MARGIN, MARGIN));
        for p in &d.boxes {
            assert!(p.x + p.width + MARGIN <= d.width && p.y + p.height + MARGIN <= d.height);
        }
        assert_eq!(d.curves.len(), 2);
        assert!(
            d.curves[0]
                .path
                .starts_with(&format!("M{},", a.x + a.width))
        );
    }

    #[test]
    fn a_job_sits_one_column_after_its_deepest_upstream() {
        // a -> b -> d and a -> d: d goes after b, not beside it.
        let jobs = [job("a"), job("b"), job("d")];
        let d = lay_out(&jobs, &[link("a", "b"), link("b", "d"), link("a", "d")]);
        assert!(placed(&d, "d").x > placed(&d, "b").x);
    }

    #[test]
    fn a_fan_in_has_its_upstreams_stacked_in_one_column_and_says_all() {
        let jobs = [job("eu"), job("us"), job("merge")];
        let mut links = [link("eu", "merge"), link("us", "merge")];
        for l in &mut links {
            l.all = true;
        }
        let d = lay_out(&jobs, &links);
        let (eu, us, merge) = (placed(&d, "eu"), placed(&d, "us"), placed(&d, "merge"));
        assert_eq!(eu.x, us.x);
        assert!(eu.y < us.y);
        assert!(merge.x > eu.x);
        assert!(d.curves.iter().all(|c| c.all && c.label == "all succeeded"));
    }

    #[test]
    fn outcomes_other_than_success_label_the_curve() {
        let mut l = link("a", "b");
        l.on = vec!["failed".into(), "timed_out".into()];
        let d = lay_out(&[job("a"), job("b")], &[l]);
        assert_eq!(d.curves[0].label, "failed, timed_out");
    }

    #[test]
    fn a_cycle_or_an_unknown_job_still_lays_out() {
        let d = lay_out(
            &[job("a"), job("b")],
            &[link("a", "b"), link("b", "a"), link("a", "ghost")],
        );
        assert_eq!(d.boxes.len(), 2);
        assert_eq!(d.curves.len(), 2);
        assert!(lay_out(&[], &[]).boxes.is_empty());
    }

    #[test]
    fn long_names_are_cut_in_the_box() {
        let long = "x".repeat(63);
        let d = lay_out(&[job(&long)], &[]);
        assert_eq!(d.boxes[0].label.chars().count(), LABEL_CHARS);
        assert!(d.boxes[0].label.ends_with('…'));
        assert_eq!(d.boxes[0].id, long);
    }
}
