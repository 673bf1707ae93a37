//! A stand-in for gitlab-runner: runs the executor's stages exactly as the runner's custom
//! executor does (see /work/shared/reference/gitlab-custom-executor.md): one temp directory
//! per job as working directory and `TMPDIR`, the runner's variables, job variables as
//! `CUSTOM_ENV_*`, scripts as `<tmp>/script<random>/script` (mode 0700) shaped like the
//! runner's generated bash scripts.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The executor binary under test.
pub const EXECUTOR: &str = env!("CARGO_BIN_EXE_gitlab-sardinecake-executor");

/// One job: its directory, its variables and the configuration file the executor reads.
pub struct Job {
    dir: tempfile::TempDir,
    /// The job's variables, without the `CUSTOM_ENV_` prefix.
    pub variables: Vec<(String, String)>,
    /// The executor's configuration file.
    pub config_file: PathBuf,
    /// Extra runner-side variables (unprefixed).
    pub runner_env: Vec<(String, String)>,
}

/// A job ID unique across tests and test processes (digits only, like GitLab's).
pub fn unique_job_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{:03}{:05}", std::process::id(), n, rand_u16())
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 65_536) as u16
}

impl Job {
    /// A new job for `image` (if any) with the executor configuration `config_file`.
    pub fn new(image: Option<&str>, config_file: &Path) -> Job {
        let dir = tempfile::Builder::new()
            .prefix("custom-executor")
            .tempdir()
            .unwrap();
        let id = unique_job_id();
        let builds = "/builds";
        let project = format!("{builds}/group/project");
        let mut variables: Vec<(String, String)> = vec![
            ("CI_JOB_ID".into(), id.clone()),
            ("CI_CONCURRENT_ID".into(), "0".into()),
            ("CI_CONCURRENT_PROJECT_ID".into(), "0".into()),
            ("CI_BUILDS_DIR".into(), builds.into()),
            ("CI_PROJECT_DIR".into(), project),
            ("CI_JOB_TIMEOUT".into(), "3600".into()),
            ("CI_JOB_SERVICES".into(), "[]".into()),
            ("CI_SERVER".into(), "yes".into()),
            ("CI_SERVER_HOST".into(), "gitlab.test.example".into()),
            ("CI_RUNNER_ID".into(), "1".into()),
        ];
        if let Some(image) = image {
            variables.push(("CI_JOB_IMAGE".into(), image.into()));
        }
        Job {
            dir,
            variables,
            config_file: config_file.to_path_buf(),
            runner_env: Vec::new(),
        }
    }

    /// The same job with another executor configuration file.
    pub fn with_config(mut self, config_file: &Path) -> Job {
        self.config_file = config_file.to_path_buf();
        self
    }

    /// The job's directory (working directory and `TMPDIR` of every stage).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The job VM's name, as the executor makes it from the job's variables.
    pub fn vm_name(&self) -> String {
        let variables: std::collections::HashMap<String, String> = self
            .variables
            .iter()
            .map(|(k, v)| (format!("CUSTOM_ENV_{k}"), v.clone()))
            .collect();
        gitlab_sardinecake_executor::env::JobEnv::from_env(|name| variables.get(name).cloned())
            .vm_name()
            .unwrap()
    }

    /// `BUILD_EXIT_CODE_FILE`.
    pub fn build_exit_code_file(&self) -> PathBuf {
        self.dir().join("build_exit_code")
    }

    /// The command for one stage, with the runner's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(EXECUTOR);
        command
            .args(args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .env("TMPDIR", self.dir())
            .env("BUILD_FAILURE_EXIT_CODE", "1")
            .env("SYSTEM_FAILURE_EXIT_CODE", "2")
            .env("BUILD_EXIT_CODE_FILE", self.build_exit_code_file())
            .env("JOB_RESPONSE_FILE", self.dir().join("response.json"))
            .env("GITLAB_SARDINECAKE_EXECUTOR_CONF_FILES", &self.config_file)
            .env("NO_COLOR", "1");
        for (key, value) in &self.variables {
            command.env(format!("CUSTOM_ENV_{key}"), value);
        }
        for (key, value) in &self.runner_env {
            command.env(key, value);
        }
        command
    }

    /// Runs a stage and returns its output.
    pub fn stage(&self, args: &[&str]) -> StageOutput {
        let output = self.command(args).output().unwrap();
        StageOutput::from(output, args)
    }

    /// Writes a runner-style script for `commands` and returns its path.
    pub fn script(&self, commands: &[&str]) -> PathBuf {
        let script_dir = tempfile::Builder::new()
            .prefix("script")
            .tempdir_in(self.dir())
            .unwrap()
            .keep();
        let path = script_dir.join("script");
        fs_err::write(&path, runner_script(&self.project_dir(), commands)).unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    fn project_dir(&self) -> String {
        self.variables
            .iter()
            .find(|(k, _)| k == "CI_PROJECT_DIR")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Runs `commands` as the runner's stage `stage`.
    pub fn run(&self, stage: &str, commands: &[&str]) -> StageOutput {
        let script = self.script(commands);
        self.stage(&["run", script.to_str().unwrap(), stage])
    }

    /// Starts `commands` as stage `stage` without waiting.
    pub fn spawn_run(&self, stage: &str, commands: &[&str]) -> Child {
        let script = self.script(commands);
        self.command(&["run", script.to_str().unwrap(), stage])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// What one stage did.
#[derive(Debug)]
pub struct StageOutput {
    /// The stage's arguments.
    pub args: String,
    /// Exit status (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl StageOutput {
    /// Wraps a finished process's output.
    pub fn from(output: Output, args: &[&str]) -> StageOutput {
        StageOutput {
            args: args.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit status, showing everything the stage printed when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &StageOutput {
        assert_eq!(
            self.code,
            Some(code),
            "stage `{}` exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout and stderr together (what the job log shows).
    pub fn log(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A script as gitlab-runner 19.4 generates it for bash: traps, shell options, the body run by
/// `eval` in a subshell with stdin from /dev/null, each command echoed as `$ cmd`.
pub fn runner_script(project_dir: &str, commands: &[&str]) -> String {
    let mut body = String::from("export CI_JOB_STATUS=\"running\"\n");
    body.push_str(&format!(
        "mkdir -p \"{project_dir}\"\ncd \"{project_dir}\"\n"
    ));
    for command in commands {
        body.push_str(&format!(
            "echo {}\n",
            ansi_c_quote(&format!("\x1b[32;1m$ {command}\x1b[0;m"))
        ));
        body.push_str(command);
        body.push('\n');
    }
    format!(
        "#!/usr/bin/env bash\n\n\
         trap 'exit 1' TERM\n\n\
         if set -o | grep pipefail > /dev/null; then set -o pipefail; fi; set -o errexit\n\
         set +o noclobber\n\
         (trap 'exit 1' TERM; eval {}) < /dev/null\n\
         exit 0\n",
        ansi_c_quote(&body)
    )
}

/// Quotes `s` as a bash `$'...'` string.
fn ansi_c_quote(s: &str) -> String {
    let mut quoted = String::from("$'");
    for c in s.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '\'' => quoted.push_str("\\'"),
            '\n' => quoted.push_str("\\n"),
            '\x1b' => quoted.push_str("\\x1b"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// Writes an executor configuration file into `dir` and returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("gitlab-sardinecake-executor.ini");
    fs_err::write(&path, text).unwrap();
    path
}
