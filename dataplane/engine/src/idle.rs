//! What a worker does when its queues are empty.

use std::time::Duration;

/// Idle behaviour of workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdleMode {
    /// Spin on the queues (production: lowest latency, one core at 100%).
    BusyPoll,
    /// Back off after empty polls: spin, then yield, then sleep up to a cap
    /// (labs, small machines, several appliances on one host).
    #[default]
    Adaptive,
}

/// Empty polls spent spinning before yielding.
const SPIN_POLLS: u32 = 256;
/// Empty polls spent yielding before sleeping.
const YIELD_POLLS: u32 = 1024;
/// Longest sleep: bounds the added latency of the first packet after idling.
const MAX_SLEEP: Duration = Duration::from_micros(500);

/// Adaptive back-off state.
#[derive(Debug, Default)]
pub struct Backoff {
    empty: u32,
    sleep: Duration,
}

impl Backoff {
    /// Call after a loop iteration that received packets.
    #[inline]
    pub fn reset(&mut self) {
        self.empty = 0;
        self.sleep = Duration::ZERO;
    }

    /// Call after a loop iteration that received nothing.
    #[inline]
    pub fn idle(&mut self, mode: IdleMode) {
        if mode == IdleMode::BusyPoll {
            std::hint::spin_loop();
            return;
        }
        self.empty = self.empty.saturating_add(1);
        if self.empty < SPIN_POLLS {
            std::hint::spin_loop();
        } else if self.empty < SPIN_POLLS + YIELD_POLLS {
            std::thread::yield_now();
        } else {
            self.sleep = (self.sleep * 2).clamp(Duration::from_micros(10), MAX_SLEEP);
            std::thread::sleep(self.sleep);
        }
    }
}
