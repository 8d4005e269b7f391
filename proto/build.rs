//! Compiles `herd/v1/*.proto` with protox, a protobuf compiler written in
//! Rust, so the build needs no system `protoc`.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "herd/v1/types.proto",
    "herd/v1/manager.proto",
    "herd/v1/worker.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;

    // Server reflection serves this encoded set to tools such as grpcurl.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("herd_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
