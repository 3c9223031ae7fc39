//! Which attempt of a call a request is, as gRPC's own retries say it: the
//! `grpc-previous-rpc-attempts` header, absent on a first attempt, 1 on the
//! second, and so on. The calling side writes it on each retry; the
//! called side reads it onto its server span, so a retry is told apart
//! from a first try in the trace of either.

use tonic::metadata::{MetadataMap, MetadataValue};

/// The header gRPC's retries carry the count of earlier attempts in.
pub const PREVIOUS_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// The span attribute that counts the attempts before this one.
pub const PREVIOUS_ATTEMPTS_ATTRIBUTE: &str = "thespian.retry.previous_attempts";

/// The most earlier attempts read from a caller: more than any retry
/// policy makes, so a larger value is not a Thespian's and is ignored.
const MAX_PREVIOUS: u32 = 64;

/// Says in `metadata` that `previous` attempts came before this one; a
/// first attempt says nothing, as gRPC's does.
pub fn write(metadata: &mut MetadataMap, previous: u32) {
    if previous > 0 {
        metadata.insert(PREVIOUS_ATTEMPTS, MetadataValue::from(previous));
    }
}

/// How many attempts came before this request, if its caller said.
pub fn read(metadata: &MetadataMap) -> Option<u32> {
    metadata
        .get(PREVIOUS_ATTEMPTS)?
        .to_str()
        .ok()?
        .parse()
        .ok()
        .filter(|previous| (1..=MAX_PREVIOUS).contains(previous))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_written_on_retries_only_and_read_back() {
        let mut metadata = MetadataMap::new();
        write(&mut metadata, 0);
        assert_eq!(read(&metadata), None);
        write(&mut metadata, 2);
        assert_eq!(metadata.get(PREVIOUS_ATTEMPTS).unwrap(), "2");
        assert_eq!(read(&metadata), Some(2));
        for bad in ["0", "-1", "x", "65"] {
            metadata.insert(PREVIOUS_ATTEMPTS, bad.parse().unwrap());
            assert_eq!(read(&metadata), None, "{bad}");
        }
    }
}
