//! TODO crate root
