//! Property tests of rollback's parsers of outside input: `--to` values and lists, ECR image
//! references from task definitions, and RFC 3339 times from flags. Never a panic; a refused
//! value says which flag. Seeded; `PROPTEST_CASES=N` for a longer local run.

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed};

use crate::images::parse_ecr;
use crate::incident::parse_time;
use crate::target::{Targets, parse_to};

fn config() -> PtConfig {
    PtConfig {
        cases: deploy_core::testing::proptest_cases(2000),
        rng_seed: RngSeed::Fixed(0x5eed_0b4c),
        failure_persistence: None,
        ..PtConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn to_values_parse_or_name_the_flag(
        s in "\\PC{0,40}|[0-9]{0,14}|arn:aws:ecs:[a-z0-9-]{0,12}:[0-9]{0,12}:task-definition/[a-z0-9:-]{0,12}|[a-z-]{0,8}:[0-9-]{0,12}"
    ) {
        match parse_to(&s) {
            Ok(crate::target::To::Revision(r)) => prop_assert!(r > 0),
            Ok(_) => {}
            Err(e) => prop_assert!(e.contains("--to"), "{}", e),
        }
    }

    #[test]
    fn to_lists_never_panic(
        items in prop::collection::vec("[a-z]{0,3}=?[a-z0-9:=-]{0,10}", 0..5),
        services in prop::collection::vec("[a-z]{1,3}", 0..4),
    ) {
        if let Err(e) = Targets::parse(&items, &services) {
            prop_assert!(e.contains("--to"), "{}", e);
        }
    }

    #[test]
    fn image_references_never_panic(
        s in "([0-9]{12}|[0-9a-z]{0,13})\\.dkr\\.ecr\\.[a-z0-9-]{0,12}\\.amazonaws\\.com(\\.cn)?/[a-z0-9/._-]{0,16}(:[a-zA-Z0-9._-]{0,8})?(@sha256:[0-9a-f]{0,64})?|\\PC{0,60}"
    ) {
        if let Some(i) = parse_ecr(&s) {
            prop_assert!(!i.repository.is_empty(), "{:?}", i);
        }
    }

    #[test]
    fn times_never_panic(
        s in "\\PC{0,30}|[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{1,12})?Z?"
    ) {
        if let Err(e) = parse_time(&s) {
            prop_assert!(e.contains("RFC 3339"), "{}", e);
        }
    }
}
