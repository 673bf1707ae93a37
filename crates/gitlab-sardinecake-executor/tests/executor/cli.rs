//! Stages that need no test bed: command-line handling, exit statuses, config output, and
//! cleanup/run against libvirt's in-process test driver.

use crate::harness::{EXECUTOR, Job, runner_script, write_config};

fn config_dir(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), text);
    (dir, path)
}

const TEST_DRIVER: &str = "[DEFAULT]\nconnect = test:///default\n";

#[test]
fn help_and_version_exit_zero() {
    let output = std::process::Command::new(EXECUTOR)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "config",
        "prepare",
        "run",
        "cleanup",
        "--identity-file",
        "--clonedir",
    ] {
        assert!(help.contains(word), "{help}");
    }
    let output = std::process::Command::new(EXECUTOR)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn usage_errors_are_system_failures_with_the_runners_code() {
    let (_dir, config) = config_dir(TEST_DRIVER);
    let job = Job::new(None, &config);
    let mut command = job.command(&["run", "/only/one/argument"]);
    command.env("SYSTEM_FAILURE_EXIT_CODE", "7");
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn config_prints_the_json_the_runner_parses() {
    let (_dir, config) = config_dir(
        "[DEFAULT]\nconnect = test:///default\nguest-builds-dir = /builds\nguest-cache-dir = /cache\n",
    );
    let job = Job::new(Some("registry.example/vm:1"), &config);
    let output = job.stage(&["config"]);
    output.expect(0);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(json["driver"]["name"], "gitlab-sardinecake-executor");
    let version = json["driver"]["version"].as_str().unwrap();
    assert!(version.starts_with(env!("CARGO_PKG_VERSION")), "{version}");
    assert!(version.contains("(libvirt "), "{version}");
    assert_eq!(json["builds_dir"], "/builds");
    assert_eq!(json["cache_dir"], "/cache");
    assert_eq!(json["builds_dir_is_shared"], false);
    assert_eq!(json["hostname"], job.vm_name());
}

#[test]
fn config_of_a_per_image_section() {
    let (_dir, config) = config_dir(
        "[DEFAULT]\nconnect = test:///default\nguest-builds-dir = /builds\n[registry.example/win*]\nguest-builds-dir = C:/builds\n",
    );
    let job = Job::new(Some("registry.example/windows:11"), &config);
    let output = job.stage(&["config"]);
    let json: serde_json::Value = serde_json::from_str(&output.expect(0).stdout).unwrap();
    assert_eq!(json["builds_dir"], "C:/builds");
}

#[test]
fn no_run_stops_after_the_settings_and_hides_the_password() {
    let (_dir, config) = config_dir("[DEFAULT]\nconnect = test:///nowhere\npassword = hunter2\n");
    let job = Job::new(Some("registry.example/vm:1"), &config);
    let output = job.stage(&["--no-run", "prepare"]);
    output.expect(0);
    assert!(
        output.stderr.contains("password = (set)"),
        "{}",
        output.stderr
    );
    assert!(!output.log().contains("hunter2"), "{}", output.log());
}

#[test]
fn a_broken_config_file_is_a_system_failure_naming_the_line() {
    let (_dir, config) = config_dir("[DEFAULT]\npull-policy = sometimes\n");
    let job = Job::new(Some("registry.example/vm:1"), &config);
    let output = job.stage(&["prepare"]);
    output.expect(2);
    assert!(
        output.stderr.contains("gitlab-sardinecake-executor.ini:2"),
        "{}",
        output.stderr
    );
}

#[test]
fn prepare_without_job_id_says_what_is_missing() {
    let (_dir, config) = config_dir(TEST_DRIVER);
    let mut job = Job::new(Some("registry.example/vm:1"), &config);
    job.variables.retain(|(key, _)| key != "CI_JOB_ID");
    let output = job.stage(&["prepare"]);
    output.expect(2);
    assert!(
        output.stderr.contains("CUSTOM_ENV_CI_JOB_ID is not set"),
        "{}",
        output.stderr
    );
}

#[test]
fn prepare_refuses_images_that_are_not_allowed() {
    let (_dir, config) = config_dir(
        "[DEFAULT]\nconnect = test:///default\nallowed-images = registry.example/ci/*\n",
    );
    let job = Job::new(Some("evil.example/vm:1"), &config);
    let output = job.stage(&["prepare"]);
    output.expect(2);
    assert!(
        output
            .stderr
            .contains("\"evil.example/vm:1\" is not allowed"),
        "{}",
        output.stderr
    );
}

#[test]
fn prepare_without_any_image_is_a_system_failure() {
    let (_dir, config) = config_dir(TEST_DRIVER);
    let job = Job::new(None, &config);
    let output = job.stage(&["prepare"]);
    output.expect(2);
    assert!(
        output.stderr.contains("names no image"),
        "{}",
        output.stderr
    );
}

#[test]
fn cleanup_with_nothing_to_clean_succeeds_twice() {
    let clonedir = tempfile::tempdir().unwrap();
    let (_dir, config) = config_dir(&format!(
        "{TEST_DRIVER}clonedir = {}\n",
        clonedir.path().display()
    ));
    let job = Job::new(Some("registry.example/vm:1"), &config);
    job.stage(&["cleanup"]).expect(0);
    job.stage(&["cleanup"]).expect(0);
}

#[test]
fn cleanup_removes_a_leftover_clone_directory() {
    let clonedir = tempfile::tempdir().unwrap();
    let (_dir, config) = config_dir(&format!(
        "{TEST_DRIVER}clonedir = {}\n",
        clonedir.path().display()
    ));
    let job = Job::new(Some("registry.example/vm:1"), &config);
    let leftover = clonedir.path().join(job.vm_name());
    fs_err::create_dir_all(&leftover).unwrap();
    fs_err::write(leftover.join("data.qcow2"), "overlay").unwrap();
    let other = clonedir.path().join("gitlab-1");
    fs_err::create_dir_all(&other).unwrap();
    job.stage(&["cleanup"]).expect(0);
    assert!(!leftover.exists());
    assert!(other.exists(), "another job's directory stays");
}

/// A VM with the job's name that the executor did not make (another runner's, an
/// administrator's) survives prepare and cleanup: both fail instead of destroying it.
#[test]
fn a_foreign_vm_with_the_jobs_name_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_config_dir, placeholder) = config_dir("");
    let job = Job::new(Some("registry.example/vm:1"), &placeholder);
    let node = dir.path().join("node.xml");
    fs_err::write(
        &node,
        format!(
            "<node><domain type='test'><name>{}</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain></node>",
            job.vm_name()
        ),
    )
    .unwrap();
    let (_dir2, config) = config_dir(&format!(
        "[DEFAULT]\nconnect = test://{}\nclonedir = {}\n",
        node.display(),
        dir.path().join("clones").display()
    ));
    let job = job.with_config(&config);
    for stage in ["prepare", "cleanup"] {
        let output = job.stage(&[stage]);
        output.expect(2);
        assert!(
            output
                .stderr
                .contains("was not made by gitlab-sardinecake-executor"),
            "{stage}: {}",
            output.stderr
        );
    }
}

#[test]
fn run_without_the_vm_is_a_system_failure() {
    let (_dir, config) = config_dir(TEST_DRIVER);
    let job = Job::new(Some("registry.example/vm:1"), &config);
    let output = job.run("build_script", &["echo hi"]);
    output.expect(2);
    assert!(
        output
            .stderr
            .contains(&format!("the job's VM {} does not exist", job.vm_name())),
        "{}",
        output.stderr
    );
    assert!(!job.build_exit_code_file().exists());
}

#[test]
fn run_with_an_unreadable_script_is_a_system_failure() {
    let (_dir, config) = config_dir(TEST_DRIVER);
    let job = Job::new(Some("registry.example/vm:1"), &config);
    let output = job.stage(&["run", "/nonexistent/script", "build_script"]);
    output.expect(2);
    assert!(
        output.stderr.contains("/nonexistent/script"),
        "{}",
        output.stderr
    );
}

/// The harness's scripts must behave like the runner's: checked here with the local bash.
#[test]
fn harness_scripts_behave_like_the_runners() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let script = dir.path().join("script");
    let text = runner_script(
        project.to_str().unwrap(),
        &["echo 'it''s' \"grüße\"", "false", "echo never"],
    );
    fs_err::write(&script, text).unwrap();
    let output = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("$ echo 'it''s' \"grüße\""), "{stdout}");
    assert!(stdout.contains("\nits grüße\n"), "{stdout}");
    assert!(!stdout.contains("\nnever\n"), "{stdout}");
    assert!(project.is_dir());
}

#[test]
fn logs_have_colours_only_on_a_terminal_or_when_forced() {
    let (_dir, config) = config_dir(TEST_DRIVER);
    let job = Job::new(Some("registry.example/vm:1"), &config);
    let log = |force: Option<&str>| {
        let mut command = job.command(&["-v", "config"]);
        command.env_remove("NO_COLOR");
        if let Some(value) = force {
            command.env("CLICOLOR_FORCE", value);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(0));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let piped = log(None);
    assert!(!piped.is_empty(), "-v config logs its settings");
    assert!(
        !piped.contains('\u{1b}'),
        "colour codes in a pipe: {piped:?}"
    );
    assert!(
        log(Some("1")).contains('\u{1b}'),
        "CLICOLOR_FORCE=1 gives colours"
    );
}
