//! The code generated from `proto/thespian.proto`, and the codec it uses.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

tonic::include_proto!("thespian");

/// The encoded descriptors of the proto, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("thespian_descriptor");

/// How many bytes each message's encoding or decoding buffer starts with:
/// room for an empty message's five-byte frame many times over. A longer
/// message grows its buffer as it needs.
const MESSAGE_BUFFER: usize = 256;

/// prost's codec with buffers sized for the empty messages every method
/// takes and returns. tonic's default buffer is 8 KiB per message, and a
/// response keeps its buffer until it has been written: when 10,000
/// sleepers answered at once, those buffers were a fifth of Thespian's heap
/// (`docs/performance.md`).
#[derive(Debug, Clone, Copy)]
pub struct SmallBuffers<T, U>(PhantomData<fn() -> (T, U)>);

impl<T, U> Default for SmallBuffers<T, U> {
    fn default() -> Self {
        SmallBuffers(PhantomData)
    }
}

impl<T, U> Codec for SmallBuffers<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}

/// How many encoded bytes a stream of messages writes before it yields:
/// tonic's own default, which has no getter to read it from.
const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(MESSAGE_BUFFER, YIELD_THRESHOLD)
}
