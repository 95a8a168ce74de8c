//! Property tests of what health-check reads from outside: incident records from CloudWatch
//! Logs (`--kpi`; any message, any numbers) and the JSON reports of a job (`--checklist`; any
//! bytes). Never a panic; a file that is not a report is a usage error naming it. Seeded;
//! `PROPTEST_CASES=N` for a longer local run.

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed};

fn config() -> PtConfig {
    PtConfig {
        cases: deploy_core::testing::proptest_cases(1000),
        rng_seed: RngSeed::Fixed(0x5eed_4c4c),
        failure_persistence: None,
        ..PtConfig::default()
    }
}

/// An incident-log message: a record of either environment with any MTTR (u64::MAX included),
/// or text that is no record at all.
fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            "inc-[a-c]",
            prop_oneof![Just("staging"), Just("production")],
            prop::option::of(any::<u64>()),
            prop::option::of("[0-9T:Z-]{0,24}"),
        )
            .prop_map(|(id, env, mttr, at)| {
                serde_json::json!({
                    "incident_id": id,
                    "environment": env,
                    "mttr_seconds": mttr,
                    "detection_time": at,
                })
                .to_string()
            }),
        "\\PC{0,40}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn incident_records_add_up_without_panic(msgs in prop::collection::vec(message(), 0..20)) {
        let (m, skipped) = crate::kpi::mttr(&msgs, "staging");
        prop_assert!(skipped <= msgs.len());
        prop_assert!(m.recovered <= m.incidents);
        if let (Some(avg), Some(max)) = (m.avg, m.max) {
            prop_assert!(avg <= max as f64 + 1.0);
        }
    }

    #[test]
    fn any_file_as_a_report_is_read_or_named(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.json");
        std::fs::write(&f, &bytes).unwrap();
        match crate::checklist::read_reports(std::slice::from_ref(&f)) {
            Ok(r) => prop_assert_eq!(r.len(), 1),
            Err(e) => prop_assert!(e.to_string().contains("r.json"), "{}", e),
        }
    }
}
