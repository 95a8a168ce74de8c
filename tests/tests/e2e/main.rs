//! The end-to-end suite as one test binary (one link of the AWS SDK instead of one per file):
//! each module is one area, run against the real stand-ins (moto, the registry, Prism, act, the
//! stand-in service). Pick an area with its module path: `cargo test --test e2e rollback::`.

mod action;
mod charts;
mod checklist;
mod cli;
mod contract;
mod diagnose;
mod ecr;
mod examples;
mod fuzz_cli;
mod health;
mod install;
mod leak;
mod notify;
mod publish;
mod release_flow;
mod rollback;
mod smoke;
mod sync;
mod sync_oracle;
mod sync_transport;
mod tls;
mod wiring;
mod workflows;
