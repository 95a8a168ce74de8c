//! What the workspace's property tests share (no test framework here: the crates that test pull
//! proptest in as a dev-dependency).

/// Cases per property: `PROPTEST_CASES` when set to a number (a longer local search), else `ci`,
/// the count CI runs every time.
pub fn proptest_cases(ci: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}
