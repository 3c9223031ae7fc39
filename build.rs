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
    pack_relocations();
    Ok(())
}

/// Asks the linker to pack relocations (`DT_RELR`) on Linux with glibc,
/// where instances run. A position-independent binary carries one
/// relocation for every pointer in its read-only data, some 24,000 of them,
/// and the loader reads each one at every start: unpacked they were about
/// half a megabyte of every instance's resident memory, packed they are a
/// few kilobytes. Every target of the package gets it, the bare server the
/// benchmark compares against included, so comparisons stay like for like.
/// A linker too old for the option ignores it with a warning, and one whose
/// libc cannot load packed relocations leaves them unpacked.
fn pack_relocations() {
    let target = |key| env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg=-Wl,-z,pack-relative-relocs");
    }
}
