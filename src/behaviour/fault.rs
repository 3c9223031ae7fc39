//! The chance that a step fails, and how the failure looks to the caller.

use rand::{Rng, RngExt};

/// A chance of failing, and how the failure looks to the caller. Made only
/// through [`Fault::new`], so every fault's chance is a probability,
/// whichever front end built it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// Probability in `[0, 1]` that a roll fails.
    chance: f64,
    /// The gRPC status code a failure answers with.
    code: tonic::Code,
}

/// A failure chance outside `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("must be a probability between 0 and 1, not {0}")]
pub struct ChanceOutOfRange(pub f64);

impl Fault {
    /// A fault that fails with `code`, `chance` of the time.
    pub fn new(chance: f64, code: tonic::Code) -> Result<Fault, ChanceOutOfRange> {
        if (0.0..=1.0).contains(&chance) {
            Ok(Fault { chance, code })
        } else {
            Err(ChanceOutOfRange(chance))
        }
    }

    /// A fault that fails with `INTERNAL`, as every failure did in the original.
    pub fn internal(chance: f64) -> Result<Fault, ChanceOutOfRange> {
        Fault::new(chance, tonic::Code::Internal)
    }

    /// The probability that a roll fails.
    pub fn chance(&self) -> f64 {
        self.chance
    }

    /// The status code a failure answers with.
    pub fn code(&self) -> tonic::Code {
        self.code
    }

    /// Rolls the dice once, with `rng`: the executor's, seeded for the
    /// step when runs are to be reproducible.
    pub fn strikes(&self, rng: &mut impl Rng) -> bool {
        self.chance >= 1.0 || (self.chance > 0.0 && rng.random::<f64>() < self.chance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_chance_must_be_a_probability() {
        for chance in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let refused = Fault::internal(chance).expect_err("out of range");
            assert!(refused.to_string().contains("between 0 and 1"), "{refused}");
        }
        let fault = Fault::new(0.25, tonic::Code::Unavailable).unwrap();
        assert_eq!(
            (fault.chance(), fault.code()),
            (0.25, tonic::Code::Unavailable)
        );
    }

    #[test]
    fn fault_extremes_are_certain() {
        let rng = &mut rand::rng();
        assert!(Fault::internal(1.0).unwrap().strikes(rng));
        assert!((0..1000).all(|_| !Fault::internal(0.0).unwrap().strikes(rng)));
    }
}
