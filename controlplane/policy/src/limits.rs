//! Bounds on a policy document, so that a hostile or broken document cannot
//! exhaust memory or time. Every limit is enforced with an error naming it,
//! never a panic. The size limit is checked before any parsing.

/// Largest accepted document, in bytes (checked before parsing). A policy of
/// 100,000 rules in flow style takes about 9 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of lists and mappings (a policy needs 5).
pub const MAX_DEPTH: usize = 32;
/// Most YAML nodes in a document, counting every node an alias expands to
/// (refuses "billion laughs" alias bombs long before memory runs out).
pub const MAX_NODES: usize = 4_000_000;
/// Most segments, world included.
pub const MAX_SEGMENTS: usize = 65_536;
/// Most rules.
pub const MAX_RULES: usize = 200_000;
/// Most prefixes over all segments.
pub const MAX_PREFIXES: usize = 1_000_000;
/// Most endpoints listed in the policy.
pub const MAX_ENDPOINTS: usize = 1_000_000;
/// Most named services.
pub const MAX_SERVICES: usize = 65_536;
/// Most groups.
pub const MAX_GROUPS: usize = 65_536;
/// Most tests.
pub const MAX_TESTS: usize = 100_000;
/// Longest name (segment, group, service, rule, test, label key or value).
pub const MAX_NAME_LEN: usize = 128;
