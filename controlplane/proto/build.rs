//! Generates the bulkhead.v1 messages, clients and servers with the system
//! `protoc`, and the encoded file descriptor set served by reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/bulkhead/v1/common.proto",
    "proto/bulkhead/v1/policy.proto",
    "proto/bulkhead/v1/endpoint.proto",
    "proto/bulkhead/v1/cluster.proto",
    "proto/bulkhead/v1/access.proto",
    "proto/bulkhead/v1/dataplane.proto",
    "proto/bulkhead/v1/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out.join("bulkhead_v1_descriptor.bin"))
        .compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
