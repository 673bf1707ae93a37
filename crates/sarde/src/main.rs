//! `sarde`: share libvirt virtual machines through OCI container registries.

fn main() {
    println!("sarde {}", env!("CARGO_PKG_VERSION"));
}
