//! Who poke calls: one or more methods on one or more Thespians, each with a
//! weight, and the order requests take turns among them.

use std::{fmt, str::FromStr};

use crate::behaviour::MethodName;

/// The most targets one run may have.
pub const MAX_TARGETS: usize = 64;

/// The largest weight a target may have.
const MAX_WEIGHT: u32 = 1_000_000;

/// One method on one Thespian, and its share of the requests:
/// `ADDRESS:METHOD=WEIGHT` on the command line, such as
/// `frontend:6379:A=3` or `http://localhost:6390:b` (weight 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Where the Thespian listens, as given.
    pub address: String,
    /// The method to call.
    pub method: MethodName,
    /// Its share: a target of weight 3 gets three requests for each one a
    /// target of weight 1 gets.
    pub weight: u32,
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<TargetSpec, String> {
        let (rest, weight) = match text.rsplit_once('=') {
            Some((rest, weight)) => {
                let weight: u32 = weight
                    .trim()
                    .parse()
                    .map_err(|_| format!("the weight `{weight}` is not a whole number"))?;
                if !(1..=MAX_WEIGHT).contains(&weight) {
                    return Err(format!("a weight must be from 1 to {MAX_WEIGHT}"));
                }
                (rest, weight)
            }
            None => (text, 1),
        };
        let (address, method) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{text}` should be ADDRESS:METHOD or ADDRESS:METHOD=WEIGHT"))?;
        let method = method.trim().to_ascii_uppercase().parse().map_err(|e| {
            format!("`{text}` should end in :A, :B or :C, then =WEIGHT if any ({e})")
        })?;
        Ok(TargetSpec {
            address: address.trim().to_owned(),
            method,
            weight,
        })
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}={}", self.address, self.method, self.weight)
    }
}

/// Takes turns among targets by weight, evenly spread (smooth weighted
/// round robin): with weights 3 and 1 the order is A A B A, A A B A, never
/// a run of every request to one target followed by the other's.
#[derive(Debug, Clone)]
pub(super) struct Turns {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl Turns {
    /// Turns among targets of these weights.
    pub(super) fn new(weights: impl IntoIterator<Item = u32>) -> Turns {
        let weights: Vec<i64> = weights.into_iter().map(i64::from).collect();
        Turns {
            current: vec![0; weights.len()],
            total: weights.iter().sum(),
            weights,
        }
    }

    /// The index of the target whose turn it is.
    pub(super) fn next(&mut self) -> usize {
        if self.weights.len() <= 1 {
            return 0;
        }
        let mut chosen = 0;
        for (i, weight) in self.weights.iter().enumerate() {
            self.current[i] += weight;
            if self.current[i] > self.current[chosen] {
                chosen = i;
            }
        }
        self.current[chosen] -= self.total;
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_an_address_a_method_and_a_weight() {
        let spec: TargetSpec = "http://localhost:6390:a=3".parse().unwrap();
        assert_eq!(spec.address, "http://localhost:6390");
        assert_eq!(spec.method, MethodName::A);
        assert_eq!(spec.weight, 3);
        let spec: TargetSpec = "frontend:6379:C".parse().unwrap();
        assert_eq!((spec.address.as_str(), spec.weight), ("frontend:6379", 1));

        assert!("frontend:6379:D".parse::<TargetSpec>().is_err());
        assert!("frontend:6379:A=0".parse::<TargetSpec>().is_err());
        assert!("frontend:6379:A=x".parse::<TargetSpec>().is_err());
        assert!("frontend".parse::<TargetSpec>().is_err());
    }

    #[test]
    fn turns_follow_the_weights_evenly_spread() {
        let mut turns = Turns::new([3, 1]);
        let order: Vec<usize> = (0..8).map(|_| turns.next()).collect();
        assert_eq!(order, [0, 0, 1, 0, 0, 0, 1, 0]);

        let mut turns = Turns::new([5, 3, 2]);
        let mut counts = [0; 3];
        for _ in 0..1000 {
            counts[turns.next()] += 1;
        }
        assert_eq!(counts, [500, 300, 200]);
    }
}
