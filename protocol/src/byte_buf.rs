//! Byte payloads (`Vec<u8>`) in serde's bytes form, for `#[serde(with = "crate::byte_buf")]`.
//!
//! Serde's default treats a `Vec<u8>` as a sequence and visits it one `u8` at a time; for
//! step logs and exec output, tens of kilobytes per frame, that loop was the largest single
//! cost of streaming a console on both sides. In postcard a sequence of `u8` and a byte
//! string are the same bytes on the wire (varint length, then the bytes, each `u8` being
//! one byte), so this changes the speed and nothing else: old and new peers interoperate.

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteBuf)
}

struct ByteBuf;

impl<'de> Visitor<'de> for ByteBuf {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    /// Formats that have no byte strings hand over a sequence.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The hint comes from the peer: capped, so a lying length cannot allocate much.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use crate::services::ExecEvent;
    use crate::steps::{StepEvent, StepSpec};

    /// The types as they were encoded before: `Vec<u8>` as a sequence.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum OldStepEvent {
        Log(Vec<u8>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum OldExecEvent {
        Started { pid: u32 },
        Stdout(Vec<u8>),
        Stderr(Vec<u8>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OldStepSpec {
        script: Vec<u8>,
        env: Vec<(String, String)>,
    }

    proptest! {
        #[test]
        fn same_bytes_on_the_wire_as_a_sequence(data in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            let old = postcard::to_allocvec(&OldStepEvent::Log(data.clone())).unwrap();
            let new = postcard::to_allocvec(&StepEvent::Log(data.clone())).unwrap();
            prop_assert_eq!(&old, &new);
            prop_assert_eq!(postcard::from_bytes::<StepEvent>(&old).unwrap(), StepEvent::Log(data.clone()));

            let old = postcard::to_allocvec(&OldExecEvent::Stderr(data.clone())).unwrap();
            let new = postcard::to_allocvec(&ExecEvent::Stderr(data.clone())).unwrap();
            prop_assert_eq!(&old, &new);
            prop_assert_eq!(postcard::from_bytes::<OldExecEvent>(&new).unwrap(), OldExecEvent::Stderr(data.clone()));

            let env = vec![("K".to_owned(), "V".to_owned())];
            let old = postcard::to_allocvec(&OldStepSpec { script: data.clone(), env: env.clone() }).unwrap();
            let new = postcard::to_allocvec(&StepSpec { script: data.clone(), env: env.clone() }).unwrap();
            prop_assert_eq!(&old, &new);
            prop_assert_eq!(postcard::from_bytes::<StepSpec>(&old).unwrap(), StepSpec { script: data, env });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = postcard::from_bytes::<StepEvent>(&bytes);
            let _ = postcard::from_bytes::<ExecEvent>(&bytes);
        }
    }

    #[test]
    fn a_length_beyond_the_input_is_an_error() {
        // Variant 0 (Log), then a length of 2^20 with three bytes behind it.
        let bytes = [0, 0x80, 0x80, 0x40, 1, 2, 3];
        assert!(postcard::from_bytes::<StepEvent>(&bytes).is_err());
    }
}
