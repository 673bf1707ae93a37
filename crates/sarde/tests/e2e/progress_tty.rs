//! Progress bars: drawn on stderr when it is a terminal (with the rate and the ETA), silent
//! with `-q` and when stderr is a file or a pipe. `script` gives sarde a pseudo-terminal.

use std::process::Command;

use sardine_testbed::{TestVm, VmOptions};

use crate::common::Workdir;

/// Runs `sarde ARGS` on a pseudo-terminal and returns everything it wrote there.
fn on_a_terminal(work: &Workdir, args: &[&str]) -> String {
    let command = work.command(args);
    let mut line = vec![command.get_program().to_string_lossy().into_owned()];
    line.extend(
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned()),
    );
    let quoted: Vec<String> = line
        .iter()
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect();
    let mut script = Command::new("script");
    script.args([
        "--quiet",
        "--return",
        "--command",
        &quoted.join(" "),
        "/dev/null",
    ]);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let output = script
        .output()
        .unwrap_or_else(|e| panic!("cannot run script: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sarde {args:?} on a terminal failed:\n{text}"
    );
    text
}

#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let work = Workdir::new("progress");
    let vm = TestVm::create(&VmOptions {
        label: "progress".into(),
        ..VmOptions::default()
    })
    .unwrap();

    let drawn = on_a_terminal(&work, &["export", vm.name(), "progress/tiny:1"]);
    assert!(
        drawn.contains("exporting data.qcow2") && drawn.contains("eta"),
        "no progress bar:\n{drawn}"
    );
    assert!(drawn.contains("/s"), "the rate is missing:\n{drawn}");

    let quiet = on_a_terminal(&work, &["-q", "export", vm.name(), "progress/tiny:2"]);
    assert!(!quiet.contains("eta"), "-q still draws:\n{quiet}");

    let output = work.run(&["export", vm.name(), "progress/tiny:3"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("eta"),
        "drawn into a pipe:\n{stderr}"
    );
}
