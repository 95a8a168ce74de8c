//! Test support for the end-to-end suite: the stand-in service and the rig's stand-ins.

pub mod rig;
pub mod standin;
