//! Property tests of every parser that reads user input: the config loader (arbitrary bytes and
//! arbitrary TOML), `${VAR}` expansion, jq assertions (compile and evaluate), status sets,
//! durations and Retry-After. The property is always the same: never a panic, and bad input is
//! an error that says where. Seeded, so CI runs the same cases every time; `PROPTEST_CASES=N`
//! runs N cases per target for a longer local search.

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed};

use crate::config::{Config, ConfigError, StatusSet, expand};

/// Cases per target: `PROPTEST_CASES`, else `ci`.
pub(crate) fn config(ci: u32) -> PtConfig {
    PtConfig {
        cases: crate::testing::proptest_cases(ci),
        rng_seed: RngSeed::Fixed(0x5eed_d3b1),
        failure_persistence: None,
        ..PtConfig::default()
    }
}

fn lookup(k: &str) -> Option<String> {
    match k {
        "TOKEN" => Some("tok-1234-secret".into()),
        "EMPTY" => Some(String::new()),
        "URL" => Some("https://example.com".into()),
        _ => None,
    }
}

/// A TOML value, biased to the shapes the schema expects and the ones it must refuse.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ${}:/._-]{0,20}".prop_map(|s| format!("{s:?}")),
        Just("\"${TOKEN}\"".to_owned()),
        Just("\"${NOPE}\"".to_owned()),
        Just("\"${\"".to_owned()),
        Just("\"https://u:p@h.example\"".to_owned()),
        Just("\"https://example.com\"".to_owned()),
        Just("\"5m\"".to_owned()),
        Just("\"2xx\"".to_owned()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[]".to_owned()),
        Just("[\"/x\", 3]".to_owned()),
        Just("{ a = \"b\" }".to_owned()),
        Just("\"200-100\"".to_owned()),
        Just("\"9999999999999999999999s\"".to_owned()),
    ]
}

const TABLES: &[&str] = &[
    "",
    "[defaults]",
    "[environments.staging]",
    "[images.web]",
    "[health]",
    "[[health.checks]]",
    "[smoke]",
    "[[smoke.checks]]",
    "[metrics]",
    "[alarms]",
    "[environments.staging.alarms]",
    "[bogus]",
];

const KEYS: &[&str] = &[
    "name",
    "path",
    "url",
    "method",
    "status",
    "assert",
    "headers",
    "body",
    "timeout",
    "retry_for",
    "max_latency",
    "expect_headers",
    "base_url",
    "cluster",
    "services",
    "protected",
    "region",
    "load_balancer",
    "repository",
    "source",
    "tags",
    "moving_tags",
    "mutability",
    "wait",
    "interval",
    "success_threshold",
    "version_field",
    "retry_on",
    "namespace",
    "names",
    "prefix",
    "concurrency",
    "bake",
    "alb_5xx_window",
    "nope",
];

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop::sample::select(TABLES),
            prop::collection::vec((prop::sample::select(KEYS), value()), 0..6),
        ),
        0..6,
    )
    .prop_map(|tables| {
        let mut s = String::new();
        for (t, kvs) in tables {
            s.push_str(t);
            s.push('\n');
            for (k, v) in kvs {
                s.push_str(&format!("{k} = {v}\n"));
            }
        }
        s
    })
}

fn assert_located(text: &str, r: Result<Config, ConfigError>) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(ConfigError::Invalid {
            path, line, column, ..
        }) => {
            prop_assert_eq!(path, "deploy.toml");
            prop_assert!(
                line >= 1 && line <= text.lines().count().max(1) + 1,
                "line {line}"
            );
            prop_assert!(column >= 1);
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("unexpected error kind: {e}"))),
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn config_from_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let r = Config::parse_with(&text, "deploy.toml", lookup);
        assert_located(&text, r)?;
    }

    #[test]
    fn config_from_arbitrary_toml_never_panics(text in document()) {
        let r = Config::parse_with(&text, "deploy.toml", lookup);
        if let Ok(c) = &r {
            // An unset variable where a tool reads is a located error naming no secret.
            for env in [None, Some("staging")] {
                if let Err(e) = c.require(&["defaults", "environments", "health", "smoke"], env) {
                    let m = e.to_string();
                    prop_assert!(m.starts_with("deploy.toml:") && m.contains("is not set"), "{m}");
                    prop_assert!(!m.contains("tok-1234-secret"), "{m}");
                }
            }
        }
        if let Err(e) = &r {
            // Whatever is wrong, the message names the file first and never the secret.
            let m = e.to_string();
            prop_assert!(m.starts_with("deploy.toml"), "{m}");
            prop_assert!(!m.contains("tok-1234-secret"), "{m}");
        }
        assert_located(&text, r)?;
    }

    #[test]
    fn expansion_never_panics_and_dollar_dollar_round_trips(s in "[a-zA-Z0-9_${}]{0,40}") {
        let _ = expand(&s, lookup);
        // Escaping every `$` makes any text come back literally, with no variable used.
        let escaped = s.replace('$', "$$");
        prop_assert_eq!(expand(&escaped, lookup), Ok((s.clone(), false)));
    }

    #[test]
    fn status_sets_parse_or_say_why(s in "[0-9xX -]{0,9}") {
        match StatusSet::parse_one(&s) {
            Ok((lo, hi)) => prop_assert!((100..=599).contains(&lo) && lo <= hi && hi <= 599),
            Err(e) => prop_assert!(e.contains("status") || e.contains("range"), "{e}"),
        }
    }

    #[test]
    fn status_codes_round_trip(code in 100u16..=599) {
        prop_assert_eq!(StatusSet::parse_one(&code.to_string()), Ok((code, code)));
        let class = code / 100;
        prop_assert_eq!(StatusSet::parse_one(&format!("{class}xx")), Ok((class * 100, class * 100 + 99)));
    }

    #[test]
    fn durations_parse_within_the_cap(s in "[0-9]{0,25}[a-z ]{0,6}[0-9]{0,4}[a-z]{0,3}") {
        if let Ok(d) = crate::duration::parse(&s) {
            prop_assert!(d <= crate::duration::MAX_DURATION);
        }
    }

    #[test]
    fn retry_after_never_panics(s in "[A-Za-z0-9 ,:]{0,40}", secs in any::<u64>()) {
        let _ = crate::retry::parse_retry_after(&s);
        prop_assert_eq!(
            crate::retry::parse_retry_after(&secs.to_string()),
            Some(std::time::Duration::from_secs(secs))
        );
    }

    #[test]
    fn retry_after_dates_never_panic(
        day in 0u64..40, month in prop::sample::select(&["Jan", "Feb", "Dec", "Xyz"][..]),
        year in 0u64..100_000, h in 0u64..100, m in 0u64..100, sec in 0u64..100,
    ) {
        let v = format!("Sun, {day:02} {month} {year} {h:02}:{m:02}:{sec:02} GMT");
        let _ = crate::retry::parse_retry_after(&v);
    }
}

/// jq expressions from jq's own tokens (no `def`, `recurse`, `range`, `repeat`, `until`,
/// `while`: a user's assertion may loop, but token soup must not hang CI).
fn jq_expr() -> impl Strategy<Value = String> {
    let tok = prop::sample::select(
        &[
            ".",
            ".a",
            ".b",
            ".[]",
            ".[0]",
            "|",
            ",",
            "==",
            "!=",
            "<",
            ">",
            "and",
            "or",
            "not",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ":",
            "\"x\"",
            "1",
            "0",
            "-1",
            "null",
            "true",
            "false",
            "length",
            "keys",
            "select(",
            "map(",
            "has(\"a\")",
            "type",
            "tostring",
            "tonumber",
            "test(\"a\")",
            "//",
            "+",
            "-",
            "*",
            "/",
            "%",
            "if",
            "then",
            "else",
            "end",
            "to_entries",
            "empty",
            "error",
            "$__loc__",
            "?",
            "..",
            "as $x |",
            "$x",
            "reduce",
            "foreach",
            "ascii_downcase",
            "add",
            "any",
            "all",
            "first",
            "last",
            "fromjson",
            "tojson",
            "try",
            "catch",
            ".s",
            "\"\\(",
            ")\"",
            "\"\\(def f: [f]; f)\"",
            "def",
        ][..],
    );
    prop::collection::vec(tok, 1..12).prop_map(|t| t.join(" "))
}

/// A body whose field `s` may hold JSON text, some of it nested far deeper than any parser's
/// stack allows (what a hostile server can answer), for `.s | fromjson`.
fn body_with_text() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        json(),
        (1usize..1_000_000, "[\\[{\"a:0-9 ]{0,3}").prop_map(|(n, tail)| {
            serde_json::json!({ "s": format!("{}{tail}", "[".repeat(n)) })
        }),
        json().prop_map(|v| serde_json::json!({ "s": v.to_string() })),
    ]
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i32>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z]{0,5}".prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[ab]", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(3000))]

    /// What a server answers is read by `fromjson` however deep it nests: an error at worst.
    #[test]
    fn fromjson_of_any_body_never_crashes(
        expr in prop::sample::select(&[
            ".s | fromjson",
            ".s | try fromjson catch true",
            "[.s | fromjson] | length > 0",
            ".s | fromjson | tojson | length > 0",
        ][..]),
        input in body_with_text(),
    ) {
        let a = crate::checks::Assertion::compile(expr).unwrap();
        if let Err(reason) = a.check(&input) {
            prop_assert!(reason.starts_with("assertion `"), "{reason}");
        }
    }

    #[test]
    fn jq_compile_and_evaluate_never_panic(expr in jq_expr(), input in body_with_text()) {
        match crate::checks::Assertion::compile(&expr) {
            Ok(a) => {
                // Pass or a reason naming the assertion; never a panic.
                if let Err(reason) = a.check(&input) {
                    prop_assert!(reason.starts_with("assertion `"), "{reason}");
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}

/// An incident-log message: records of two environments and every outcome (and some that are
/// not), or bytes that are not a record at all.
fn incident_message() -> impl Strategy<Value = String> {
    let outcome = prop_oneof![
        Just("in-progress"),
        Just("recovered"),
        Just("failed"),
        Just("interrupted"),
        Just("resolved"),
        Just("archived"),
    ];
    prop_oneof![
        4 => ("[abc]", prop_oneof![Just("staging"), Just("production")], outcome, any::<bool>()).prop_map(
            |(id, env, outcome, time)| {
                let mut v = serde_json::json!({"incident_id": id, "environment": env, "outcome": outcome});
                if time {
                    v["detection_time"] = serde_json::json!("2026-12-01T10:00:00Z");
                }
                v.to_string()
            }
        ),
        1 => "\\PC{0,40}",
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    /// Any log: no panic; the open incidents are exactly those of a reference model of the rules
    /// (per id, its newest record; open when that is not healthy again and either a rollback
    /// in progress, which only its own record ends, or followed by no record of the environment
    /// saying it is healthy again), each once, as its newest record.
    #[test]
    fn open_incidents_follow_the_newest_record(log in prop::collection::vec(incident_message(), 0..24)) {
        use crate::incidents::{Outcome, Record, open};
        let found = open(&log, "staging");
        let records: Vec<Record> = log
            .iter()
            .filter_map(|m| serde_json::from_str::<Record>(m).ok())
            .filter(|r| r.environment == "staging")
            .collect();
        let mut expected: Vec<&str> = Vec::new();
        for (n, r) in records.iter().enumerate() {
            let newest = records.iter().rposition(|x| x.incident_id == r.incident_id) == Some(n);
            let healed_after = records[n + 1..].iter().any(|x| x.outcome.healthy_again());
            if newest
                && !r.outcome.healthy_again()
                && (r.outcome == Outcome::InProgress || !healed_after)
            {
                expected.push(&r.incident_id);
            }
        }
        let mut got: Vec<&str> = found.iter().map(|r| r.incident_id.as_str()).collect();
        got.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(&got, &expected);
        for r in &found {
            let newest = records.iter().rev().find(|x| x.incident_id == r.incident_id);
            prop_assert_eq!(newest, Some(r));
        }
        // Recoveries of every id seen close everything.
        let mut healed = log.clone();
        for id in ["a", "b", "c"] {
            healed.push(serde_json::json!({"incident_id": id, "environment": "staging", "outcome": Outcome::Recovered}).to_string());
        }
        prop_assert!(open(&healed, "staging").is_empty());
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// A task definition name or ARN from ECS or a flag: `family:revision` with a positive
    /// revision and a non-empty family, or nothing; never a panic.
    #[test]
    fn task_definition_names_split_or_are_refused(
        s in "\\PC{0,40}|(arn:aws:ecs:[a-z0-9-]{0,12}:[0-9]{0,12}:task-definition/)?[a-zA-Z0-9_:-]{0,16}:-?[0-9]{0,12}"
    ) {
        if let Some((family, rev)) = crate::taskdef::parse_name(&s) {
            prop_assert!(!family.is_empty() && rev > 0, "{s:?}");
            prop_assert!(s.contains(family), "{s:?}");
        }
    }
}
