//! Integration tests of `sarde`, run as the built binary. All but `cli` need the test bed
//! (`scripts/test` runs them in its network namespace): real libvirt, real registries and the
//! tiny guest.
//!
//! * `build`: `sarde build` of the test bed's build files (YAML and lvh's images.json): boots,
//!   overlays, the cache, bad input, pushing a derived image.
//! * `big_disks`: images of a 200 GiB sparse disk through a real registry; manifest limits.
//! * `cli`: the command line (help, completions, man pages, configuration, usage errors).
//! * `local`: export, import, list, getconfig, clone and rm of real VMs.
//! * `registry`: login, logout, fetch, push and pull against a real registry.
//! * `day2_operations`: prune, list snapshots, ip and ssh.
//! * `uefi`: a UEFI guest's NVRAM store travels with its image.
//! * `interop_legacy`: images exchanged with the Python sardinecake 0.4.2, both ways.
//! * `interrupted_operations`: clone and rm killed and run again.
//! * `hostile_images`, `hostile_disk_files` and `hostile_faults`: hand-built hostile images
//!   (their domains, their disk files and qcow2 chains), and export and import killed, run
//!   concurrently or short of space (helpers in `hostile_support`).
//! * `progress_tty`: progress bars on a terminal only.
//! * `first_hour`: the documented flow with the default directories, and relative ones.
//! * `container_verbs`: inspect, tag, start, stop, and what day one asks of prune, ip and rm.
//! * `run`: fire-once VMs (`sarde run`): output, status, shares, ports, kernel overrides,
//!   interrupts, concurrent runs, and an interactive shell on a terminal.
//!
//! Module names are part of the test names that `.config/nextest.toml` filters: a test that
//! boots a guest has `guest`, `boot`, `roundtrip`, `round_trip` or `executor_job` in its name,
//! so no module may have one of them in its name (all its tests would count as booting).

mod big_disks;
mod build;
mod cli;
mod common;
mod container_verbs;
mod day2_operations;
mod first_hour;
mod hostile_disk_files;
mod hostile_faults;
mod hostile_images;
mod hostile_support;
mod interop_legacy;
mod interrupted_operations;
mod local;
mod progress_tty;
mod registry;
mod run;
mod uefi;
