//! Talking to the job's VM: its address, the SSH login, and running a script in it.
//!
//! Credentials: each of user, password and port comes from the settings (command line, config
//! file) if set there, else from the image's sardine config (its first user; the port of its
//! `ssh` service), else the built-in `vagrant`/`vagrant`/22. Key files come first, then the
//! password; nothing else is tried (no agent, no default keys: W15).
//!
//! Scripts are uploaded as bytes (any encoding survives, W16) to a private file in the guest's
//! temp directory and run there by `bash` with stdin from /dev/null, in a process group of
//! their own, so that a cancellation (SIGTERM) reaches every process of the script.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use sardine_ssh::{ExitStatus, Login, Session, SshError, Target};
use sardine_vm::vmconfig::VmConfig;

use crate::settings::Settings;

/// Built-in SSH user and password, as sardinecake 0.4.2 (Vagrant's convention).
pub const DEFAULT_CREDENTIAL: &str = "vagrant";
/// The SSH login for the guest at `host`: each part from the settings, else the image's
/// sardine config, else the built-in `vagrant`/`vagrant` on port 22.
pub fn ssh_target(
    settings: &Settings,
    image_config: Option<&VmConfig>,
    host: &str,
) -> anyhow::Result<Target> {
    let configured = Login {
        user: settings.username.clone(),
        password: settings.password.clone(),
        port: settings.ssh_port,
        identities: settings.identity_file.iter().cloned().collect(),
    };
    let built_in = Login {
        user: Some(DEFAULT_CREDENTIAL.to_owned()),
        password: Some(DEFAULT_CREDENTIAL.to_owned()),
        ..Login::default()
    };
    let login = configured
        .or(image_config.map(VmConfig::login).unwrap_or_default())
        .or(built_in);
    Ok(login.target(host)?)
}

/// The address of the VM `name` and its MACs, waiting up to `timeout` for an address to
/// appear in one of the configured sources (on the VM's own interfaces only); refused when
/// another running VM claims it ([`sardine_vm::run::guest_address`]).
pub async fn address(
    settings: &Settings,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<(IpAddr, Vec<String>)> {
    let (connect, name) = (settings.connect.clone(), name.to_owned());
    let sources = settings.address_sources.clone();
    blocking(move || {
        match sardine_vm::run::guest_address(connect.as_deref(), &name, timeout, &sources) {
            Err(sardine_vm::ImageError::VmNotFound { .. }) => bail!(
                "the job's VM {name} does not exist (any more); did prepare succeed, or was the VM destroyed?"
            ),
            found => Ok(found?),
        }
    })
    .await
}

/// Runs a blocking libvirt call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a libvirt task died")?
}

/// Logs in, retrying while the guest's SSH server starts, until `deadline` has passed.
pub async fn connect(target: &Target, deadline: Duration) -> anyhow::Result<Session> {
    Session::connect_with_retry(target, deadline)
        .await
        .with_context(|| {
            format!(
                "cannot log in to the job's VM as {}@{}:{}",
                target.user, target.host, target.port
            )
        })
}

/// How a script run ended.
#[derive(Debug)]
pub enum ScriptEnd {
    /// It ran to the end with this status.
    Finished(ExitStatus),
    /// The runner cancelled it (SIGTERM); the script was sent SIGTERM too.
    Cancelled,
}

/// Uploads `script` to the guest and runs it with `bash`, streaming its output to ours. Errors
/// are failures of the connection or the guest, not of the script.
pub async fn run_script(
    session: &Session,
    script: &[u8],
    file_name: &str,
    cancel: impl Future<Output = ()>,
) -> anyhow::Result<ScriptEnd> {
    let path = format!("\"${{TMPDIR:-/tmp}}\"/{file_name}");
    let mut stderr = tokio::io::stderr();
    let upload = format!("umask 077 && cat > {path}");
    let status = session
        .exec(&upload, Some(script), &mut tokio::io::sink(), &mut stderr)
        .await
        .context("cannot upload the script to the job's VM")?;
    if !status.success() {
        bail!("cannot upload the script to the job's VM: `{upload}` ended with {status}");
    }
    let mut stdout = tokio::io::stdout();
    match session
        .exec_cancellable(&wrapper(&path), None, &mut stdout, &mut stderr, cancel)
        .await
    {
        Ok(status) => Ok(ScriptEnd::Finished(status)),
        Err(SshError::Cancelled) => Ok(ScriptEnd::Cancelled),
        Err(e) => Err(e).context("running the script in the job's VM failed (connection lost?)"),
    }
}

/// The POSIX shell command that runs the uploaded script at `path` (a shell word) in a session
/// and process group of its own (`setsid`, where the guest has it: shells without a terminal
/// have no job control), forwards SIGTERM/SIGHUP/SIGINT to that whole group, deletes the script
/// and exits with the script's status. A `wait` that a forwarded signal interrupted (status
/// above 128, `hit` set) is repeated, so the status is the script's, not the interruption's,
/// even when the script ends at once.
fn wrapper(path: &str) -> String {
    format!(
        "f={path}; pid=; hit=\n\
         trap 'hit=1; [ -n \"$pid\" ] && {{ kill -TERM -\"$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null; }}' TERM HUP INT\n\
         if command -v setsid >/dev/null 2>&1; then setsid bash \"$f\" </dev/null & else bash \"$f\" </dev/null & fi\n\
         pid=$!\n\
         while :; do hit=; wait \"$pid\"; rc=$?; [ -n \"$hit\" ] && [ \"$rc\" -gt 128 ] || break; done\n\
         rm -f \"$f\"\n\
         exit \"$rc\"\n"
    )
}

/// A file name for a script in the guest: unique per job, stage and process, safe unquoted.
pub fn remote_file_name(vm_name: &str, stage: &str) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect()
    };
    format!(
        "sardinecake-{}-{}-{}.sh",
        safe(vm_name),
        safe(stage),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SharedOptions;
    use sardine_ssh::Auth;

    fn settings() -> Settings {
        let config = sardine_config::Config::default();
        crate::settings::resolve(&SharedOptions::default(), &config, Some("reg.example/vm:1"))
            .unwrap()
    }

    #[test]
    fn built_in_credentials() {
        let target = ssh_target(&settings(), None, "10.0.0.2").unwrap();
        assert_eq!(target.user, "vagrant");
        assert_eq!(target.port, 22);
        assert_eq!(target.auth, [Auth::Password("vagrant".into())]);
    }

    #[test]
    fn the_image_supplies_defaults_and_settings_win() {
        let config = br#"{
            "users": [{"username": "root", "password": "sardine"}],
            "services": [{"service": "ssh", "port": 2222, "protocol": "tcp"}]
        }"#;
        let config = VmConfig::parse(config, "test").unwrap();
        let target = ssh_target(&settings(), Some(&config), "h").unwrap();
        assert_eq!((target.user.as_str(), target.port), ("root", 2222));
        assert_eq!(target.auth, [Auth::Password("sardine".into())]);

        let mut explicit = settings();
        explicit.username = Some("admin".into());
        explicit.ssh_port = Some(22);
        let target = ssh_target(&explicit, Some(&config), "h").unwrap();
        assert_eq!((target.user.as_str(), target.port), ("admin", 22));
        assert_eq!(
            target.auth,
            [Auth::Password("sardine".into())],
            "each value separately"
        );
    }

    #[test]
    fn key_directories_give_their_private_keys_then_the_password() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["id_ed25519", "id_ed25519.pub", "id_rsa", "known_hosts"] {
            fs_err::write(dir.path().join(name), "x").unwrap();
        }
        let mut with_keys = settings();
        with_keys.identity_file = Some(dir.path().to_path_buf());
        let target = ssh_target(&with_keys, None, "h").unwrap();
        assert_eq!(target.auth.len(), 3, "two keys, then the password");
        let empty = tempfile::tempdir().unwrap();
        with_keys.identity_file = Some(empty.path().to_path_buf());
        assert!(ssh_target(&with_keys, None, "h").is_err());
    }

    #[test]
    fn remote_file_names_are_plain() {
        let name = remote_file_name("gitlab-42", "step_my release/../x");
        assert!(
            name.starts_with("sardinecake-gitlab-42-step_my_release____x-"),
            "{name}"
        );
        assert!(name.ends_with(".sh"));
    }

    #[test]
    fn wrapper_runs_the_script_with_bash_and_keeps_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.sh");
        fs_err::write(
            &script,
            "#!/usr/bin/env bash\necho out; echo err >&2; exit 3\n",
        )
        .unwrap();
        let command = wrapper(&format!("'{}'", script.display()));
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
        assert!(!script.exists(), "the script is deleted afterwards");
    }

    #[test]
    fn wrapper_forwards_sigterm_to_the_whole_script() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.sh");
        let marker = dir.path().join("still-running");
        let started = dir.path().join("started");
        let body = format!(
            "trap 'exit 1' TERM\n: | (trap 'exit 1' TERM; touch '{}'; sleep 30; touch '{}')\n",
            started.display(),
            marker.display()
        );
        fs_err::write(&script, body).unwrap();
        let command = wrapper(&format!("'{}'", script.display()));
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .spawn()
            .unwrap();
        let waiting = std::time::Instant::now();
        while !started.exists() {
            assert!(
                waiting.elapsed() < Duration::from_secs(20),
                "the script never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The subshell's trap is set; give `sleep` a moment to start too.
        std::thread::sleep(Duration::from_millis(200));
        let start = std::time::Instant::now();
        kill_term(child.id());
        let status = child.wait().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the script stopped promptly"
        );
        assert_eq!(status.code(), Some(1), "the script's TERM trap ran");
        assert!(!marker.exists());
    }

    fn kill_term(pid: u32) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
