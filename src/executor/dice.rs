//! Where every roll of a request comes from: drawn durations, failure
//! rolls, drawn attribute values, a script's `random()`.
//!
//! Unseeded, each roll takes fresh numbers from the thread's RNG, as it
//! always did. With `THESPIAN_SEED` set, a request's numbers follow from
//! the seed and its trace id, so a request sent again with the same trace
//! id plays out the same way.
//!
//! Positions, not order, decide the numbers. Concurrent branches finish in
//! whatever order the scheduler and the network allow, so one RNG shared
//! by a request would hand its numbers out differently each time. Instead
//! each step gets a *lineage*: the request's, mixed with the step's index
//! among its siblings at every level down, and with the try for a retried
//! step. A roll seeds a small RNG from its step's lineage and what the
//! roll is for, and so draws the same numbers however the steps around it
//! were scheduled.

use std::num::NonZeroU64;

use opentelemetry::trace::TraceId;
use rand::{SeedableRng, rngs::SmallRng};

/// The dice of one step of one request: a lineage when runs are seeded,
/// nothing when they are not. Copied down the tree, and kept by every step
/// waiting in every request in flight: one word, with no tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dice {
    /// The step's place in a seeded request, or `None` to roll unseeded.
    lineage: Option<NonZeroU64>,
}

/// What a roll is for: two rolls of one step draw from separate streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Roll {
    /// How long a sleep takes.
    Latency = 1,
    /// Whether a step fails.
    Fault = 2,
    /// A script's `random()`, while it builds the request's tree.
    Script = 3,
    /// The values a step's span draws for its attributes to search on.
    Attributes = 4,
    /// The values the request's server span draws for its method's
    /// attributes, apart from those its top step draws with the same dice.
    MethodAttributes = 5,
    /// Which of a step's `failures` comes up, if any.
    Outcome = 6,
    /// The extra wait of a slow outcome.
    Slow = 7,
    /// The jitter of a retry's backoff.
    Backoff = 8,
    /// What an active scenario draws: its failures and changed waits.
    Scenario = 9,
}

impl Dice {
    /// The dice of a whole request: from `seed` and the request's trace id
    /// when a seed is given, unseeded otherwise.
    pub fn for_request(seed: Option<u64>, trace_id: TraceId) -> Dice {
        let trace = u128::from_be_bytes(trace_id.to_bytes());
        Dice {
            lineage: seed.map(|seed| lineage(mix(mix(seed, (trace >> 64) as u64), trace as u64))),
        }
    }

    /// The dice of the step at `index` among the steps this one holds.
    pub fn child(self, index: usize) -> Dice {
        Dice {
            lineage: self
                .lineage
                .map(|parent| lineage(mix(parent.get(), index as u64))),
        }
    }

    /// A fresh RNG for one roll of this step: seeded from the lineage and
    /// `roll` when runs are seeded, from the thread's RNG otherwise.
    pub fn rng(self, roll: Roll) -> SmallRng {
        match self.lineage {
            Some(lineage) => SmallRng::seed_from_u64(mix(lineage.get(), roll as u64)),
            None => SmallRng::from_rng(&mut rand::rng()),
        }
    }
}

/// A mixed value as a lineage: the one value in 2^64 that is zero stands
/// for one, so a lineage fits in a word beside the niche of `None`.
fn lineage(mixed: u64) -> NonZeroU64 {
    NonZeroU64::new(mixed).unwrap_or(NonZeroU64::MIN)
}

/// Folds `value` into `state` so that nearby inputs give unrelated outputs:
/// SplitMix64's finaliser over the two.
fn mix(state: u64, value: u64) -> u64 {
    let mut z = state
        .rotate_left(17)
        .wrapping_add(value)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    use super::*;

    fn draw(dice: Dice) -> u64 {
        dice.rng(Roll::Latency).random()
    }

    #[test]
    fn the_same_seed_trace_and_place_give_the_same_numbers() {
        let trace = TraceId::from_bytes([7; 16]);
        let dice = Dice::for_request(Some(42), trace);
        assert_eq!(
            draw(dice.child(3)),
            draw(Dice::for_request(Some(42), trace).child(3))
        );
    }

    #[test]
    fn any_difference_gives_other_numbers() {
        let trace = TraceId::from_bytes([7; 16]);
        let dice = Dice::for_request(Some(42), trace);
        let others = [
            Dice::for_request(Some(43), trace),
            Dice::for_request(Some(42), TraceId::from_bytes([8; 16])),
            dice.child(0),
            dice.child(1),
            dice.child(0).child(1),
            dice.child(1).child(0),
        ];
        let mut numbers: Vec<u64> = others.iter().map(|d| draw(*d)).collect();
        numbers.push(draw(dice));
        numbers.push(dice.rng(Roll::Fault).random());
        let count = numbers.len();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), count);
    }

    #[test]
    fn unseeded_dice_differ_every_roll() {
        let dice = Dice::for_request(None, TraceId::from_bytes([7; 16]));
        assert_eq!(dice, Dice::default());
        assert_ne!(draw(dice), draw(dice));
    }
}
