//! Folded stacks ("outer;middle;leaf" → weight) as numbers, before they are written as lines:
//! time per second of run, so that runs of different lengths compare, and the narrow frames
//! folded into their parents, so that a page embedding the graph stays small.

use std::{collections::BTreeMap, ops::AddAssign};

/// Each stack's weight, by its frames joined with `;`.
pub type Stacks<W> = BTreeMap<String, W>;

/// A stack's time per second in two profiles, in µs/s: the two counts of a differential
/// flame graph's line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pair {
    pub before: u64,
    pub after: u64,
}

impl AddAssign for Pair {
    fn add_assign(&mut self, other: Pair) {
        self.before += other.before;
        self.after += other.after;
    }
}

/// Nanoseconds over `seconds` of run, as µs per second (1,000,000 µs/s is one thread's whole
/// time); stacks that round to nothing are left out.
pub fn per_second(ns: &Stacks<i64>, seconds: f64) -> Stacks<u64> {
    ns.iter()
        .map(|(stack, ns)| (stack.clone(), (*ns as f64 / 1e3 / seconds).round() as u64))
        .filter(|(_, us)| *us > 0)
        .collect()
}

/// Before's and after's stacks side by side (a stack missing from one side weighs 0 there).
pub fn pair(before: &Stacks<u64>, after: &Stacks<u64>) -> Stacks<Pair> {
    let mut pairs: Stacks<Pair> = Stacks::new();
    for (stack, us) in before {
        pairs.entry(stack.clone()).or_default().before = *us;
    }
    for (stack, us) in after {
        pairs.entry(stack.clone()).or_default().after = *us;
    }
    pairs
}

/// Cuts every stack at its first frame narrower than `min_share` of the total `width`: that
/// frame and the ones it called fold into its caller, which keeps their time (as its own), so
/// the caller is as wide as before and the total unchanged. A stack's outermost frame stays
/// however narrow (it has no caller to fold into).
pub fn fold_narrow<W: Copy + AddAssign>(
    stacks: &Stacks<W>,
    width: impl Fn(&W) -> u64,
    min_share: f64,
) -> Stacks<W> {
    let total: u64 = stacks.values().map(&width).sum();
    let narrowest = total as f64 * min_share;
    // The width of each frame: the stacks that pass through it, by their prefix up to it.
    let mut frames: BTreeMap<&str, u64> = BTreeMap::new();
    for (stack, weight) in stacks {
        for (end, _) in stack.match_indices(';').chain([(stack.len(), "")]) {
            *frames.entry(&stack[..end]).or_default() += width(weight);
        }
    }
    let mut folded: Stacks<W> = Stacks::new();
    for (stack, weight) in stacks {
        let mut kept = stack.find(';').unwrap_or(stack.len());
        for (end, _) in stack.match_indices(';').skip(1).chain([(stack.len(), "")]) {
            if (frames[&stack[..end]] as f64) < narrowest {
                break;
            }
            kept = end;
        }
        let cut = &stack[..kept];
        match folded.get_mut(cut) {
            Some(sum) => *sum += *weight,
            None => {
                folded.insert(cut.to_owned(), *weight);
            }
        }
    }
    folded
}

/// One "stack weight" line per stack, sorted by stack (as inferno's flame graph reads them).
pub fn lines(stacks: &Stacks<u64>) -> Vec<String> {
    stacks
        .iter()
        .map(|(stack, weight)| format!("{stack} {weight}"))
        .collect()
}

/// One "stack before after" line per stack, sorted by stack: a differential flame graph's input.
pub fn pair_lines(stacks: &Stacks<Pair>) -> Vec<String> {
    stacks
        .iter()
        .map(|(stack, p)| format!("{stack} {} {}", p.before, p.after))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stacks<W: Copy>(entries: &[(&str, W)]) -> Stacks<W> {
        entries.iter().map(|(s, w)| (s.to_string(), *w)).collect()
    }

    #[test]
    fn time_per_second_compares_runs_of_different_lengths() {
        let short = per_second(&stacks(&[("main;work", 2_000_000_000)]), 10.0);
        let long = per_second(&stacks(&[("main;work", 6_000_000_000)]), 30.0);
        assert_eq!(short, long);
        assert_eq!(short["main;work"], 200_000);
        // Less than half a µs per second rounds to nothing and is left out.
        assert!(per_second(&stacks(&[("main;idle", 4_000)]), 10.0).is_empty());
    }

    #[test]
    fn pairs_count_a_stack_only_one_side_has_as_zero_on_the_other() {
        let before = stacks(&[("main;old", 5), ("main;kept", 10)]);
        let after = stacks(&[("main;kept", 12), ("main;new", 7)]);
        let pairs = pair(&before, &after);
        assert_eq!(
            pair_lines(&pairs),
            ["main;kept 10 12", "main;new 0 7", "main;old 5 0"]
        );
    }

    #[test]
    fn narrow_frames_fold_into_their_caller_which_keeps_its_width() {
        let folded = fold_narrow(
            &stacks(&[
                ("main;serve;handle", 9_000u64),
                ("main;serve;handle;tiny", 5),
                ("main;serve;tiny_sibling", 4),
                ("main;serve;tiny_sibling;deeper", 1),
                ("main", 990),
                ("other", 2),
            ]),
            |w| *w,
            0.001,
        );
        assert_eq!(
            lines(&folded),
            [
                // tiny (5 of 10,002) went into handle; tiny_sibling and its callee into serve.
                "main 990",
                "main;serve 5",
                "main;serve;handle 9005",
                // An outermost frame stays, however narrow.
                "other 2"
            ]
        );
        let total = |s: &Stacks<u64>| s.values().sum::<u64>();
        assert_eq!(total(&folded), 10_002);
    }

    #[test]
    fn a_differential_graph_folds_by_the_width_it_draws_and_keeps_both_counts() {
        let pairs = pair(
            &stacks(&[("main;work", 1_000u64), ("main;gone", 400)]),
            &stacks(&[("main;work", 1_500u64), ("main;new", 1)]),
        );
        let folded = fold_narrow(&pairs, |p| p.after, 0.01);
        // `gone` and `new` are narrower than 1% of after's total: their time is main's now.
        assert_eq!(pair_lines(&folded), ["main 400 1", "main;work 1000 1500"]);
    }
}
