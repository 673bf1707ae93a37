//! libvirt: domain XML model and sanitising, connections, lifecycle and guest addresses.
