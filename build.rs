//! Compiles `proto/thespian.proto` and `proto/control.proto` into Rust with a vendored `protoc`, so the
//! build needs nothing but cargo. The file descriptor set it also writes is
//! what the reflection service hands to `grpcurl`.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("thespian_descriptor.bin"))
        // Every message is empty: see `proto::SmallBuffers`.
        .codec_path("crate::proto::SmallBuffers")
        .compile_protos(&["proto/thespian.proto", "proto/control.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
