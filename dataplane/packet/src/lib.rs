//! TODO crate root
pub mod flow;
