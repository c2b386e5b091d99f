//! Policy hand-over by read-copy-update.
//!
//! The control side publishes a new [`PolicySnapshot`] (a compiled policy and
//! its generation) into an `ArcSwap` and bumps a generation counter. Workers
//! read that counter once per burst (one relaxed load of a rarely written cache
//! line); when it moved, they take the new snapshot between bursts and report
//! the generation they now enforce. Nothing is half-applied: a burst runs
//! entirely under one snapshot.
//!
//! Old snapshots are freed off the hot path: the publisher keeps every retired
//! snapshot until all workers report a newer generation ([`PolicyHandle::reclaim`]),
//! so the reference a worker drops is never the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bulkhead_classify::CompiledPolicy;

/// One policy generation as workers see it.
#[derive(Debug)]
pub struct PolicySnapshot {
    pub generation: u64,
    pub policy: CompiledPolicy,
    /// New connections decided per rule (index = rule; last = the
    /// default), one array per worker: each is written by its worker only
    /// (a plain load and store, no read-modify-write, no sharing) and summed
    /// off the packet path by [`PolicySnapshot::rule_counts`].
    rule_hits: Box<[Box<[AtomicU64]>]>,
}

impl PolicySnapshot {
    /// A snapshot for `workers` workers (tests and benchmarks may use 1).
    pub fn new(generation: u64, policy: CompiledPolicy, workers: usize) -> PolicySnapshot {
        let rule_hits = (0..workers.max(1))
            .map(|_| {
                (0..=policy.rule_count())
                    .map(|_| AtomicU64::new(0))
                    .collect()
            })
            .collect();
        PolicySnapshot {
            generation,
            policy,
            rule_hits,
        }
    }

    /// Count a new connection decided by `rule` ([`crate::events::RULE_DEFAULT`]
    /// for the default) on `worker`.
    #[inline]
    pub fn count_rule(&self, worker: u16, rule: u32) {
        let Some(hits) = self.rule_hits.get(usize::from(worker)) else {
            return;
        };
        let i = if rule == crate::events::RULE_DEFAULT {
            hits.len().saturating_sub(1)
        } else {
            rule as usize
        };
        if let Some(c) = hits.get(i) {
            // Single writer: no read-modify-write needed.
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// `(rule name, new connections)` for every rule and the default,
    /// summed over workers.
    pub fn rule_counts(&self) -> Vec<(String, u64)> {
        let n = self.policy.rule_count();
        (0..=n)
            .map(|i| {
                let name = if i == n {
                    "default".to_string()
                } else {
                    self.policy
                        .rule_name(bulkhead_classify::RuleRef::Rule(i as u32))
                        .to_string()
                };
                let total = self
                    .rule_hits
                    .iter()
                    .filter_map(|w| w.get(i))
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum();
                (name, total)
            })
            .collect()
    }
}

/// Shared between the control side and the workers.
#[derive(Debug)]
pub struct PolicyHandle {
    workers: usize,
    current: ArcSwap<PolicySnapshot>,
    generation: AtomicU64,
    retired: Mutex<Vec<Arc<PolicySnapshot>>>,
}

impl PolicyHandle {
    /// Generation 1 is `policy`, for `workers` workers.
    pub fn new(policy: CompiledPolicy, workers: usize) -> PolicyHandle {
        PolicyHandle {
            workers,
            current: ArcSwap::from_pointee(PolicySnapshot::new(1, policy, workers)),
            generation: AtomicU64::new(1),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// Publish a new policy; returns its generation. Workers pick it up at
    /// their next burst boundary.
    pub fn publish(&self, policy: CompiledPolicy) -> u64 {
        // One publisher at a time: the retired list lock serialises publishers.
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.generation.load(Ordering::Acquire) + 1;
        let old = self.current.swap(Arc::new(PolicySnapshot::new(
            generation,
            policy,
            self.workers,
        )));
        retired.push(old);
        self.generation.store(generation, Ordering::Release);
        generation
    }

    /// The generation most recently published.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current snapshot (workers call this only when the generation moved).
    pub fn load(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// Free retired snapshots older than `min_running`, the lowest generation
    /// any worker reports. Called by the control side, never by a worker.
    pub fn reclaim(&self, min_running: u64) -> usize {
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let before = retired.len();
        retired.retain(|s| s.generation >= min_running);
        before - retired.len()
    }

    /// Snapshots still kept for workers that may hold them.
    pub fn retired_count(&self) -> usize {
        self.retired.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Look up a retained snapshot by generation (current or retired), e.g. to
    /// name the rule of a flow event judged under an older generation.
    pub fn snapshot_of(&self, generation: u64) -> Option<Arc<PolicySnapshot>> {
        let cur = self.current.load_full();
        if cur.generation == generation {
            return Some(cur);
        }
        let retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.iter().find(|s| s.generation == generation).cloned()
    }
}
