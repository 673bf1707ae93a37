//! Integration tests of `gitlab-sardinecake-executor`, run the way gitlab-runner runs it.
//!
//! * `cli`: stages that need neither guests nor registries (libvirt's in-process `test:///default`
//!   driver stands in for the daemon).
//! * `jobs`: whole jobs against the test bed: a real registry, real guests booted from the tiny
//!   image, real SSH. They need `scripts/test` (the network namespace); their names contain
//!   `executor_job` so that nextest boots at most two guests at a time.

mod cli;
mod harness;
mod jobs;
