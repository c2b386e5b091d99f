//! Build script: find libdpdk with pkg-config, generate bindings with bindgen and
//! compile the C shim with exactly libdpdk's cflags (they force-include
//! `rte_config.h`, without which neither bindgen nor cc can read DPDK's headers).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "apt-get install libdpdk-dev dpdk pkg-config libclang-dev";

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags (dynamic: Debian's EAL loads every PMD from its plugin directory).
    if let Err(e) = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        fail(&format!(
            "libdpdk >= 22.11 not found through pkg-config: {e}"
        ));
    }

    // rte_eth_from_rings lives in the net_ring PMD, which libdpdk.pc does not list. Linking it
    // is harmless: the EAL's plugin loader finds the same file already mapped.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let cflags = dpdk_cflags();
    // Other build scripts (links = "dpdk") read this as DEP_DPDK_CFLAGS.
    println!("cargo:cflags={}", cflags.join(" "));

    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR unset")));

    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c").include("csrc").opt_level(2);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("bulkhead_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_arg("-Icsrc")
        .clang_args(&cflags)
        .allowlist_function("rte_.*|bh_.*")
        .allowlist_type("rte_.*|bh_.*")
        .allowlist_var("RTE_.*|RING_F_.*|SOCKET_ID_ANY")
        // Packed structs containing aligned members: rustc rejects the faithful translation.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .derive_default(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on DPDK headers: {e}")));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("writing bindings.rs: {e}")));
}

/// `pkg-config --cflags libdpdk`, split on whitespace, exactly as given.
fn dpdk_cflags() -> Vec<String> {
    let output = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| fail(&format!("running pkg-config: {e}")));
    if !output.status.success() {
        fail(&format!(
            "pkg-config --cflags libdpdk failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn fail(msg: &str) -> ! {
    eprintln!("error: bulkhead-dpdk-sys: {msg}");
    eprintln!("error: install DPDK's development files: {INSTALL_HINT}");
    std::process::exit(1);
}
