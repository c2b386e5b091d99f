//! The threaded driver (next commit).
