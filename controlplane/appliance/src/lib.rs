//! `bulkhead-appliance`: the `bulkheadd` process — configuration, start-up of
//! the DPDK engine, policy loading and reload, flow-event output and counters.
//! Standalone (single-appliance) mode; the cluster and gRPC API build on it.
#![forbid(unsafe_code)]

pub mod config;
pub mod events;
pub mod run;
