//! Tests of the `sarde` binary's command line: help, version, completions, man pages,
//! configuration precedence and usage errors. Each test runs the built binary with its own
//! configuration files (SARDE_CONF_FILES), so the machine's files never interfere.

use std::path::Path;
use std::process::{Command, Output};

/// The subcommands sarde has.
const SUBCOMMANDS: [&str; 23] = [
    "login",
    "logout",
    "fetch",
    "push",
    "pull",
    "export",
    "import",
    "list",
    "getconfig",
    "inspect",
    "tag",
    "start",
    "stop",
    "clone",
    "rm",
    "prune",
    "ip",
    "ssh",
    "run",
    "build",
    "inventory",
    "completions",
    "man",
];

/// Runs sarde with `args`, reading only the configuration files in `conf_files`.
fn sarde_with(conf_files: &str, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_sarde"))
        .args(args)
        .env("SARDE_CONF_FILES", conf_files)
        .env("NO_COLOR", "1")
        .env_remove("SARDE_REGISTRY_USERNAME")
        .env_remove("SARDE_REGISTRY_PASSWORD")
        .output();
    match output {
        Ok(output) => output,
        Err(error) => panic!("cannot run sarde: {error}"),
    }
}

/// Runs sarde with `args` and no configuration files.
fn sarde(args: &[&str]) -> Output {
    sarde_with("", args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a configuration file into `dir` and returns its path as a string.
fn config_file(dir: &Path, text: &str) -> String {
    let path = dir.join("sarde.ini");
    if let Err(error) = fs_err::write(&path, text) {
        panic!("{error}");
    }
    path.display().to_string()
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for subcommand in SUBCOMMANDS {
        let output = sarde(&[subcommand, "--help"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{subcommand}: {}",
            stderr(&output)
        );
        let help = stdout(&output);
        assert!(
            help.contains(&format!("Usage: sarde {subcommand}")),
            "{subcommand}: {help}"
        );
        assert!(help.contains("Examples:"), "{subcommand} has no examples");
        assert!(
            help.contains("--ocidir"),
            "{subcommand} lacks the global options"
        );
    }
}

#[test]
fn top_level_help_lists_subcommands() {
    let output = sarde(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for subcommand in SUBCOMMANDS {
        assert!(help.contains(subcommand), "{subcommand} missing from help");
    }
    assert!(help.contains("SARDE_CONF_FILES"));
}

#[test]
fn version() {
    let output = sarde(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output).trim(),
        format!("sarde {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let output = sarde(&["-v"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn completions_bash() {
    let output = sarde(&["completions", "bash"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let script = stdout(&output);
    assert!(
        script.contains("_sarde") && script.contains("getconfig"),
        "{script}"
    );
}

#[test]
fn man_page_is_roff() {
    let output = sarde(&["man"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(
        page.starts_with(".TH") || page.starts_with(".ie"),
        "{}",
        &page[..page.len().min(80)]
    );
    assert!(page.contains(".TH sarde 1"), "no title header");
}

#[test]
fn unknown_size_unit_is_a_usage_error() {
    let output = sarde(&["export", "vm", "--chunksize", "12 parsecs"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("invalid value '12 parsecs'")
            && message.contains("unknown unit 'parsecs'"),
        "{message}"
    );
}

#[test]
fn negative_size_is_a_usage_error() {
    let output = sarde(&["push", "x", "--chunk-size=-5M"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("negative size"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn config_precedence_and_no_leak_between_sections_w1() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = config_file(
        dir.path(),
        "[DEFAULT]\nocidir = /default-oci\nchunksize = 1k\n\
         [export]\nchunksize = 2 MiB\nlegacy = yes\n\
         [fetch]\nocidir = /fetch-oci\n",
    );

    let output = sarde_with(&conf, &["export", "myvm", "--no-run", "-v"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("resolved settings"), "{log}");
    assert!(
        log.contains("\"/default-oci\""),
        "DEFAULT applies to export: {log}"
    );
    assert!(log.contains("2097152"), "[export] beats [DEFAULT]: {log}");
    assert!(log.contains("legacy: true"), "{log}");
    assert!(stdout(&output).is_empty());

    let output = sarde_with(&conf, &["push", "img", "--no-run", "-v"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        !log.contains("/fetch-oci"),
        "[fetch] leaked into push: {log}"
    );
    assert!(log.contains("\"/default-oci\""), "{log}");

    let output = sarde_with(
        &conf,
        &[
            "--ocidir",
            "/cli",
            "export",
            "myvm",
            "--chunksize",
            "3k",
            "--no-run",
            "-v",
        ],
    );
    let log = stderr(&output);
    assert!(
        log.contains("\"/cli\"") && log.contains("3072"),
        "command line wins: {log}"
    );
}

#[test]
fn no_run_is_silent_without_verbose() {
    let output = sarde(&["list", "--no-run"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).is_empty() && stderr(&output).is_empty(),
        "{}",
        stderr(&output)
    );
}

#[test]
fn invalid_config_value_names_the_file_and_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = config_file(dir.path(), "[export]\nchunksize = lots\n");
    let output = sarde_with(&conf, &["export", "vm", "--no-run"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "error: {conf}:2: invalid value \"lots\" for 'chunksize'"
        )),
        "{message}"
    );
    assert!(message.contains("hint: "), "{message}");
}

#[test]
fn malformed_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = config_file(dir.path(), "[list]\nthis is not ini\n");
    let output = sarde_with(&conf, &["list", "--no-run"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!("{conf}:2: cannot parse")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn percent_in_config_is_literal_w24() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = config_file(
        dir.path(),
        "[login]\nusername = 100%fish\npassword = 100%secret\n",
    );
    let output = sarde_with(&conf, &["login", "r.example", "--no-run", "-v"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("\"100%fish\""), "{log}");
    assert!(!log.contains("secret"), "passwords are never logged: {log}");
}

#[test]
fn unknown_config_keys_are_warned_about() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let conf = config_file(dir.path(), "[export]\nchunk = 1G\n");
    let output = sarde_with(&conf, &["list", "--no-run"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("unknown setting 'chunk' in [export]"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn errors_are_printed_with_their_cause() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing");
    let output = sarde(&["man", "--all", "--out-dir", &missing.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: "), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "the error names the file: {message}"
    );
    assert!(
        message.contains("No such file or directory"),
        "with its cause: {message}"
    );
}

#[test]
fn other_tools_verbs_get_a_hint() {
    let output = sarde(&["images"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("hint: sarde's command for `images` is `sarde list`"),
        "{}",
        stderr(&output)
    );
    let output = sarde(&["frobnicate"]);
    assert!(
        !stderr(&output).contains("hint: sarde's command"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn connect_has_a_short_option() {
    let output = sarde(&["-c", "test:///default", "--no-run", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// A vm-provisioner-libvirt registry in two files (merged by name), as vmp's basic example
/// is shaped: a live ISO image with a versioned tag pattern, a node, a template, a VM.
const INVENTORY_BASE: &str = r#"
images:
  - name: tiny-live
    tags:
      - pattern: ^(?P<major>\d+)\.(?P<minor>\d+)$
        url: http://127.0.0.1:8000/v{major}.{minor}/tiny.iso
        volumeName: tiny-{major}.{minor}.iso
nodes:
  - name: localhost
    libvirt: {connection: {uri: "qemu:///system"}}
templates:
  - name: live
    provisioner: v1alpha1
    libvirt:
      domain: {name: "{VM_NAME}", virtInstall: {osinfo: linux2022}}
      volumes:
        - name: "{IMAGE_VOLUME_NAME}"
          poolName: "{DEFAULT_POOL_NAME}"
          deletionPolicy: Retain
          uploadFile: {path: "{DEFAULT_IMAGE_DIR}/{IMAGE_VOLUME_NAME}"}
vms:
  - {name: vm1, template: live, nodeName: localhost, image: "tiny-live:3.20"}
"#;

#[test]
fn inventory_reads_vmp_registries() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("10-base.yaml"), INVENTORY_BASE).unwrap();
    fs_err::write(
        dir.path().join("20-more.yaml"),
        "vms:\n  - {name: vm1, vars: {MEMORY: \"2048\"}, libvirt: {domain: {virtInstall: {memory: \"{MEMORY}\"}}}}\n  - {name: vm2, template: live, nodeName: localhost, image: \"tiny-live:3.21\"}\n",
    )
    .unwrap();
    let glob = format!("{}/*.yaml", dir.path().display());
    let out = sarde(&["inventory", "--registry", &glob, "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "vm1\nvm2\n");
    let out = sarde(&[
        "inventory",
        "--registry",
        &glob,
        "image-url",
        "tiny-live:3.21",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "http://127.0.0.1:8000/v3.21/tiny.iso\n"
    );
    let out = sarde(&["inventory", "--registry", &glob, "config", "vm1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = yaml_serde::from_slice(&out.stdout).unwrap();
    assert_eq!(config["vm"]["libvirt"]["domain"]["name"], "vm1");
    assert_eq!(
        config["vm"]["libvirt"]["domain"]["virtInstall"]["memory"],
        "2048"
    );
    assert_eq!(
        config["vm"]["libvirt"]["domain"]["virtInstall"]["osinfo"],
        "linux2022"
    );
    assert_eq!(
        config["vm"]["libvirt"]["volumes"][0]["uploadFile"]["path"],
        ".images/tiny-3.20.iso"
    );
    assert_eq!(config["vars"]["IMAGE_VOLUME_NAME"], "tiny-3.20.iso");
    // $VMP_REGISTRY, and standard input without a registry.
    let out = Command::new(env!("CARGO_BIN_EXE_sarde"))
        .args(["inventory", "list"])
        .env("SARDE_CONF_FILES", "")
        .env("VMP_REGISTRY", &glob)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "vm1\nvm2\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sarde"))
        .args(["inventory", "image-url", "tiny-live:3.20"])
        .env("SARDE_CONF_FILES", "")
        .env_remove("VMP_REGISTRY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), INVENTORY_BASE.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "http://127.0.0.1:8000/v3.20/tiny.iso\n"
    );
    // Errors name what is wrong, with a hint.
    let out = sarde(&["inventory", "--registry", &glob, "config", "vm9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no VM is called vm9") && stderr.contains("hint:"),
        "{stderr}"
    );
    fs_err::write(
        dir.path().join("30-typo.yaml"),
        "vms:\n  - {name: vm2, nodeNam: x}\n",
    )
    .unwrap();
    let out = sarde(&["inventory", "--registry", &glob, "config", "vm2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `nodeNam`"), "{stderr}");
}
