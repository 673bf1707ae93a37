//! Test bed for sardinecake: registries, the libvirt test daemon, the tiny guest, unique names.
