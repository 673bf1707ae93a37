//! `gitlab-sardinecake-executor`: a GitLab Runner custom executor running jobs in VM clones.

fn main() {
    println!("gitlab-sardinecake-executor {}", env!("CARGO_PKG_VERSION"));
}
