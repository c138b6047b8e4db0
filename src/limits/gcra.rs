//! The generic cell rate algorithm (GCRA; ITU-T I.371 "virtual scheduling",
//! the algorithm behind ATM traffic policing) over several limits at once,
//! in process. The Redis backend runs the same arithmetic in one script
//! (see [`super::redis`]).
//!
//! Each key stores a theoretical arrival time (TAT). A request of cost `n`
//! against a rate with interval `T` and burst `b` is allowed when
//! `max(TAT, now) + n·T − b·T <= now`; allowing it moves TAT to
//! `max(TAT, now) + n·T`. Every limit of a request is checked before any is
//! charged, so a refused request spends nothing (a user's refused calls do
//! not eat the app's budget).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Entries kept before expired ones are swept (on insert).
const SWEEP_ABOVE: usize = 10_000;

/// One limit of one request: a key, its rate, and what this request costs.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    pub(crate) key: String,
    pub(crate) interval_us: f64,
    pub(crate) burst: u64,
    pub(crate) cost: u64,
}

/// The outcome of charging a request's cells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    Allowed,
    /// `index` of the cell that refused (the one to wait longest for), and
    /// how long until the request would be allowed.
    Limited {
        index: usize,
        wait_us: u64,
    },
}

/// Computes the outcome and, when allowed, the new TATs (same order as cells).
/// `tats[i]` is the stored TAT of cell `i` (0 when absent); times in µs.
pub(crate) fn decide(cells: &[Cell], tats: &[f64], now: f64) -> (Outcome, Vec<f64>) {
    let mut new = Vec::with_capacity(cells.len());
    let mut worst: Option<(usize, f64)> = None;
    for (i, (c, tat)) in cells.iter().zip(tats).enumerate() {
        let next = tat.max(now) + c.interval_us * c.cost as f64;
        let allow_at = next - c.interval_us * c.burst as f64;
        if allow_at > now && worst.is_none_or(|(_, w)| allow_at - now > w) {
            worst = Some((i, allow_at - now));
        }
        new.push(next);
    }
    match worst {
        Some((index, wait)) => (
            Outcome::Limited {
                index,
                wait_us: wait.ceil() as u64,
            },
            Vec::new(),
        ),
        None => (Outcome::Allowed, new),
    }
}

/// The in-process table (embedded store: one instance, nothing to share).
pub(crate) struct Local {
    started: Instant,
    tats: Mutex<HashMap<String, f64>>,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            tats: Mutex::new(HashMap::new()),
        }
    }
}

impl Local {
    pub(crate) fn charge(&self, cells: &[Cell]) -> Outcome {
        let now = self.started.elapsed().as_micros() as f64;
        // A poisoned lock only means another request panicked mid-update;
        // the numbers are still usable.
        let mut table = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let tats: Vec<f64> = cells
            .iter()
            .map(|c| table.get(&c.key).copied().unwrap_or(0.0))
            .collect();
        let (outcome, new) = decide(cells, &tats, now);
        if outcome == Outcome::Allowed {
            if table.len() > SWEEP_ABOVE {
                table.retain(|_, tat| *tat > now);
            }
            for (c, tat) in cells.iter().zip(new) {
                table.insert(c.key.clone(), tat);
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(key: &str, per_second: f64, burst: u64, cost: u64) -> Cell {
        Cell {
            key: key.into(),
            interval_us: 1e6 / per_second,
            burst,
            cost,
        }
    }

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let c = [cell("k", 1.0, 3, 1)];
        let mut tat = [0.0];
        let now = 10e6;
        for _ in 0..3 {
            let (o, new) = decide(&c, &tat, now);
            assert_eq!(o, Outcome::Allowed);
            tat[0] = new[0];
        }
        let (o, _) = decide(&c, &tat, now);
        assert_eq!(
            o,
            Outcome::Limited {
                index: 0,
                wait_us: 1_000_000
            }
        );
        // One interval later, exactly one more.
        let (o, new) = decide(&c, &tat, now + 1e6);
        assert_eq!(o, Outcome::Allowed);
        tat[0] = new[0];
        assert!(matches!(
            decide(&c, &tat, now + 1e6).0,
            Outcome::Limited { .. }
        ));
    }

    #[test]
    fn a_refused_request_charges_no_limit() {
        let local = Local::default();
        let app = cell("app", 1000.0, 1000, 1);
        let user = cell("user", 1.0, 1, 1);
        assert_eq!(local.charge(&[app.clone(), user.clone()]), Outcome::Allowed);
        let tat_app = local.tats.lock().unwrap()["app"];
        assert!(matches!(
            local.charge(&[app, user]),
            Outcome::Limited { index: 1, .. }
        ));
        assert_eq!(local.tats.lock().unwrap()["app"], tat_app);
    }

    #[test]
    fn a_batch_costs_one_per_call() {
        let c = [cell("tool", 1.0, 3, 4)];
        assert!(matches!(decide(&c, &[0.0], 5e6).0, Outcome::Limited { .. }));
        let c = [cell("tool", 1.0, 3, 3)];
        assert_eq!(decide(&c, &[0.0], 5e6).0, Outcome::Allowed);
    }
}
