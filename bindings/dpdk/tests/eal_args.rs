//! EAL argument handling, in its own process (one EAL per process).

use bulkhead_dpdk::{DpdkError, Eal};

#[test]
fn unparsed_arguments_are_reported_by_name() {
    let prefix = format!("--file-prefix=bh-dpdk-args-{}", std::process::id());
    let e = Eal::init(&[
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-telemetry",
        "--log-level=error",
        &prefix,
        "-l",
        "0",
        "leftover",
    ])
    .unwrap_err();
    assert_eq!(
        e,
        DpdkError::UnparsedArgs {
            args: vec!["leftover".to_owned()]
        }
    );
    // The EAL did start; a second init is still refused.
    assert_eq!(Eal::init(&[]).unwrap_err(), DpdkError::AlreadyInitialized);
    let nul = Eal::init(&["a\0b"]).unwrap_err();
    assert!(matches!(nul, DpdkError::InvalidName { .. }), "{nul}");
}
