//! `gitlab-sardinecake-executor`: a GitLab Runner custom executor running jobs in VM clones.

fn main() -> std::process::ExitCode {
    gitlab_sardinecake_executor::main_with(std::env::args_os().collect())
}
