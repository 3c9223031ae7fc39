//! The code generated from `proto/thespian.proto`.

tonic::include_proto!("thespian");

/// The encoded descriptors of the proto, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("thespian_descriptor");
