//! Images of VMs: export, import, clone, list and remove, over the OCI store, disks and libvirt.
