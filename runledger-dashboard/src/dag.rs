//! A run's DAG as SVG, laid out on the server: steps in columns by their longest path from a
//! step without prerequisites, ordered in each column by the mean row of their prerequisites
//! (two sweeps), edges as curves, nodes coloured by step state through their class.

use std::collections::HashMap;

use maud::{Markup, html};
use runledger::admin::RunDetail;

use crate::app::Ctx;

const NODE_W: f64 = 176.0;
const NODE_H: f64 = 46.0;
const COL_GAP: f64 = 64.0;
const ROW_GAP: f64 = 18.0;
const MARGIN: f64 = 12.0;

/// Where each step goes: (column, row) by step index.
pub(crate) fn layout(keys: &[&str], edges: &[(&str, &str)]) -> Vec<(usize, usize)> {
    let index: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let n = keys.len();
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (from, to) in edges {
        if let (Some(&f), Some(&t)) = (index.get(from), index.get(to)) {
            parents[t].push(f);
        }
    }
    // Longest path from a source, by relaxation in at most n rounds (the shape is acyclic; a
    // cycle, which the macro rules out, would only stop the rounds).
    let mut column = vec![0usize; n];
    for _ in 0..n {
        let mut changed = false;
        for t in 0..n {
            let want = parents[t].iter().map(|&p| column[p] + 1).max().unwrap_or(0);
            if want > column[t] && want < n {
                column[t] = want;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let columns = column.iter().copied().max().map_or(0, |m| m + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (i, &c) in column.iter().enumerate() {
        order[c].push(i);
    }
    let mut row = vec![0usize; n];
    let place = |order: &Vec<Vec<usize>>, row: &mut Vec<usize>| {
        for col in order {
            for (r, &i) in col.iter().enumerate() {
                row[i] = r;
            }
        }
    };
    place(&order, &mut row);
    for _ in 0..2 {
        for col in order.iter_mut().skip(1) {
            let mean = |i: usize| -> f64 {
                let ps = &parents[i];
                if ps.is_empty() {
                    row[i] as f64
                } else {
                    ps.iter().map(|&p| row[p] as f64).sum::<f64>() / ps.len() as f64
                }
            };
            let mut keyed: Vec<(f64, usize)> = col.iter().map(|&i| (mean(i), i)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *col = keyed.into_iter().map(|(_, i)| i).collect();
            for (r, &i) in col.iter().enumerate() {
                row[i] = r;
            }
        }
    }
    place(&order, &mut row);
    column.into_iter().zip(row).collect()
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// The SVG of run `d`'s DAG.
pub(crate) fn render(ctx: &Ctx, d: &RunDetail) -> Markup {
    let steps = &d.run.steps;
    let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    let edges: Vec<(&str, &str)> = d
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    let spots = layout(&keys, &edges);
    let at = |i: usize| {
        let (c, r) = spots[i];
        (
            MARGIN + c as f64 * (NODE_W + COL_GAP),
            MARGIN + r as f64 * (NODE_H + ROW_GAP),
        )
    };
    let index: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let width = spots.iter().map(|s| s.0).max().map_or(0.0, |c| {
        2.0 * MARGIN + (c + 1) as f64 * NODE_W + c as f64 * COL_GAP
    });
    let height = spots.iter().map(|s| s.1).max().map_or(0.0, |r| {
        2.0 * MARGIN + (r + 1) as f64 * NODE_H + r as f64 * ROW_GAP
    });
    html! {
        svg #dag.dag xmlns="http://www.w3.org/2000/svg" role="img"
            aria-label=(format!("the steps of run {} and what each waits for", d.run.id))
            width=(format!("{width:.0}")) height=(format!("{height:.0}"))
            viewBox=(format!("0 0 {width:.0} {height:.0}")) {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for e in &d.edges {
                @if let (Some(&f), Some(&t)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
                    @let (x1, y1) = at(f);
                    @let (x2, y2) = at(t);
                    @let (sx, sy, tx, ty) = (x1 + NODE_W, y1 + NODE_H / 2.0, x2, y2 + NODE_H / 2.0);
                    @let mid = (sx + tx) / 2.0;
                    path class=(if e.on_any { "edge on-any" } else { "edge" })
                        data-from=(e.from) data-to=(e.to)
                        d=(format!("M {sx:.1} {sy:.1} C {mid:.1} {sy:.1}, {mid:.1} {ty:.1}, {tx:.1} {ty:.1}"))
                        marker-end="url(#arrow)" {}
                }
            }
            @for (i, s) in steps.iter().enumerate() {
                @let (x, y) = at(i);
                @let what = s.kind.as_deref().map(|k| k.to_owned()).or_else(|| s.gate.as_ref().map(|g| format!("gate {g}"))).unwrap_or_default();
                g class=(format!("node state-{}", s.state)) data-step=(s.key) transform=(format!("translate({x:.1},{y:.1})")) {
                    title { (s.key) " (" (what) "): " (s.state) @if let Some(e) = &s.error { " — " (e) } }
                    @if let Some(job) = s.job {
                        a href=(ctx.link(&format!("/jobs/{job}"))) {
                            rect width=(NODE_W) height=(NODE_H) rx="6" {}
                            text.key x="10" y="19" { (short(&s.key, 22)) }
                            text.sub x="10" y="36" { (short(&format!("{what} · {}", s.state), 28)) }
                        }
                    } @else {
                        rect width=(NODE_W) height=(NODE_H) rx="6" {}
                        text.key x="10" y="19" { (short(&s.key, 22)) }
                        text.sub x="10" y="36" { (short(&format!("{what} · {}", s.state), 28)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    fn columns_follow_the_longest_path_and_rows_follow_parents() {
        // a → b → d, a → c → d, a → d, e alone.
        let keys = ["a", "b", "c", "d", "e"];
        let edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")];
        let spots = layout(&keys, &edges);
        assert_eq!(spots[0].0, 0);
        assert_eq!((spots[1].0, spots[2].0), (1, 1));
        assert_eq!(spots[3].0, 2, "d comes after its longest chain");
        assert_eq!(spots[4].0, 0);
        // No two steps share a spot.
        let mut seen = spots.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), keys.len());
    }

    #[test]
    fn a_child_sits_near_its_parent() {
        // Two chains: x1 → x2 and y1 → y2, declared so that the children come in reverse.
        let keys = ["x1", "y1", "y2", "x2"];
        let edges = [("x1", "x2"), ("y1", "y2")];
        let spots = layout(&keys, &edges);
        assert_eq!(spots[0].1, spots[3].1, "x2 on x1's row");
        assert_eq!(spots[1].1, spots[2].1, "y2 on y1's row");
    }
}
