//! Feed arbitrary bytes to the policy loader; whatever loads must also run
//! its tests, lint, format, and load again to the same ruleset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(loaded) = bulkhead_policy::load(text, "fuzz.yaml") {
        let _ = loaded.policy.run_tests();
        let _ = bulkhead_policy::lint(&loaded.policy);
        let formatted = bulkhead_policy::format(&loaded.policy);
        let again = bulkhead_policy::load(&formatted, "fmt.yaml").expect("formatted policy must load");
        assert_eq!(again.policy.ruleset(), loaded.policy.ruleset());
    }
});
