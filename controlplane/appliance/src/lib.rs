//! `bulkhead-appliance`: the `bulkheadd` process — configuration, start-up of
//! the DPDK engine, policy loading and reload, flow-event output and counters.
//! Standalone (the policy is a file) or a cluster member (the policy is the
//! cluster's replicated revision, served over the gRPC management API).
//!
//! Modules: [`config`] parses and checks the configuration; [`run`] owns the
//! engine and the control loop (signals, publishing policies, counters,
//! shutdown); [`reload`] reads and compiles policy documents off that loop;
//! [`events`] renders flow events and owns the output file;
//! [`event_writer`] writes them on their own thread; [`af_packet`] sizes the
//! rings of `net_af_packet` ports for the MTU; [`trace`] renders the packet
//! trace SIGUSR2 prints; [`member_mode`] runs the cluster member beside the
//! workers and [`follow`] compiles each replicated revision for them.
#![forbid(unsafe_code)]

pub mod af_packet;
pub mod config;
pub mod event_writer;
pub mod events;
pub mod follow;
pub mod member_mode;
pub mod reload;
pub mod run;
pub mod trace;
