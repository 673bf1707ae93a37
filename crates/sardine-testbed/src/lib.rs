//! Test bed for sardinecake's end-to-end tests: the real components, started for each test.
//!
//! Everything here talks to real things that `scripts/setup-testbed` installs and starts:
//! a `docker-registry` (distribution) per test on 127.0.0.1, the libvirt daemon that runs
//! inside the network namespace `sarde-test`, and the tiny bootable guest built by
//! `scripts/build-guest`. Tests that need them call [`require`] first: it fails with a clear
//! message (never skips) when the environment is missing.
//!
//! The whole test process runs inside the namespace (`scripts/test` arranges it), so the
//! registry's 127.0.0.1, the guests' addresses and `sarde`'s own connections all live in the
//! same network, and no traffic ever leaves it.
//!
//! Beside the test bed, the small things many tests need once: reproducible pseudo-random
//! data ([`Noise`], [`noise_file`]), `sha256:` digests of bytes and files ([`digest_of`],
//! [`file_digest`]), a free loopback port ([`free_port`]), a listener that counts connections
//! ([`Bait`]) and qcow2 images as hostile images carry them ([`qcow2_bytes`],
//! [`strip_backing_format`]).

mod built;
mod data;
mod environment;
mod guest;
mod names;
mod net;
mod qcow2;
mod registry;

pub use built::{BUILD_EPOCH, build_files_dir, copy_build_cache, shared_build_cache};
pub use data::{Noise, digest_of, file_digest, noise, noise_file, random_bytes};
pub use environment::{NETNS, libvirt_uri, netns_command, require, scratch_dir, workspace_root};
pub use guest::{
    GuestImage, NETWORK, OVMF_CODE, OVMF_VARS, PrefixGuard, SshOutput, TestVm, VmGuard, VmOptions,
    create_overlay, guest_image, qemu_img, ssh,
};
pub use names::unique_name;
pub use net::{Bait, free_port};
pub use qcow2::{qcow2_bytes, strip_backing_format};
pub use registry::{Registry, RegistryAuth};
