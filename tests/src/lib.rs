//! Test support for the end-to-end suite: the stand-in service and the rig's stand-ins.
//!
//! This crate is test code throughout: a panic here is a failed test with its message, so the
//! workspace's unwrap/expect lints are relaxed for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod actions;
pub mod contract;
pub mod ecs;
pub mod ecs_standin;
pub mod faults;
pub mod git;
pub mod https;
pub mod kpi;
pub mod oci;
pub mod recorder;
pub mod release;
pub mod release_host;
pub mod report;
pub mod rig;
pub mod standin;
pub mod tap;
