//! little-vm-helper's image configuration (`images.json`), read verbatim: a JSON list of
//! `{name, parent, image_size, bootable, packages, actions: [{comment, type, op}]}` with its ten
//! action types and their Go field names (`Cmd`, `LocalPath`, `RemoteDir`, …; matched without
//! regard to case, as Go's `encoding/json` matches them).
//!
//! What lvh means is kept: a root image is mmdebstrap's default variant of `--pkg-repo`'s suite
//! (lvh's default `sid`) with `linux-image-amd64` when bootable (the default on amd64), on an
//! 8 GiB disk unless `image_size` says otherwise; a derived image installs `packages` with apt
//! and then runs its actions; relative host paths are relative to the working directory, as
//! for lvh's `virt-customize` calls, except `install-kernel`'s, which is relative to the
//! configuration's directory (lvh: `<dir>/images/..`). Unknown keys are ignored, as Go does;
//! unknown action types are errors, as in lvh.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::BuildError;
use crate::spec::{Action, BuildFile, DebianRoot, ImageSpec, Origin, VmSpec};
use crate::yaml::host_file;

/// lvh's default disk size of a root image.
const DEFAULT_IMAGE_SIZE: u64 = 8 << 30;

/// Reads an lvh `images.json`'s text: `path` is where it came from, `suite` lvh's `--pkg-repo`,
/// `cwd` what relative host paths are relative to.
pub fn parse(text: &str, path: &Path, suite: &str, cwd: &Path) -> Result<BuildFile, BuildError> {
    let syntax = |what: String| BuildError::Syntax {
        file: path.to_path_buf(),
        what,
    };
    let list: Vec<Value> = serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
    let file_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut images = Vec::new();
    for (index, entry) in list.iter().enumerate() {
        let object = entry
            .as_object()
            .ok_or_else(|| syntax(format!("entry {index} is not an object")))?;
        let dirs = Dirs {
            cwd,
            file_dir: &file_dir,
        };
        images.push(image(object, suite, dirs, path)?);
    }
    Ok(BuildFile {
        path: path.to_path_buf(),
        base_dir: cwd.to_path_buf(),
        images,
    })
}

/// What relative host paths are relative to.
#[derive(Clone, Copy)]
struct Dirs<'a> {
    cwd: &'a Path,
    file_dir: &'a Path,
}

/// The value of `key` in `object`, matched as Go does (exactly, else without regard to case).
fn field<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn image(
    object: &Map<String, Value>,
    suite: &str,
    dirs: Dirs<'_>,
    path: &Path,
) -> Result<ImageSpec, BuildError> {
    let name = string(object, "name").unwrap_or_default();
    let invalid = |what: String| BuildError::Invalid {
        file: path.to_path_buf(),
        image: name.clone(),
        what,
    };
    if name.is_empty() {
        return Err(invalid("has no `name`".into()));
    }
    let parent = string(object, "parent").filter(|p| !p.is_empty());
    let size = match string(object, "image_size").filter(|s| !s.is_empty()) {
        Some(text) => Some(
            sardine_config::parse_size(&text)
                .map_err(|e| invalid(format!("`image_size: {text}`: {e}")))?,
        ),
        None if parent.is_none() => Some(DEFAULT_IMAGE_SIZE),
        None => None,
    };
    let packages = match field(object, "packages") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|_| invalid("`packages` is not a list of strings".into()))?,
    };
    let bootable = match field(object, "bootable") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(invalid(format!("`bootable: {other}` is not a boolean"))),
    };
    let origin = match parent {
        Some(parent) => Origin::Parent(parent),
        None => Origin::Debian(DebianRoot {
            suite: suite.to_owned(),
            mirror: None,
            variant: None,
            kernel: bootable.then(|| "linux-image-amd64".to_owned()),
        }),
    };
    let mut actions = Vec::new();
    if matches!(origin, Origin::Parent(_)) && !packages.is_empty() {
        actions.push(Action::Install {
            packages: packages.clone(),
        });
    }
    let list = match field(object, "actions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(_) => return Err(invalid("`actions` is not a list".into())),
    };
    for (index, entry) in list.iter().enumerate() {
        actions.push(
            action(entry, dirs).map_err(|what| invalid(format!("action {}: {what}", index + 1)))?,
        );
    }
    let root_packages = match origin {
        Origin::Debian(_) => packages,
        Origin::Parent(_) => Vec::new(),
    };
    Ok(ImageSpec {
        name,
        origin,
        size,
        packages: root_packages,
        hostname: None,
        users: Vec::new(),
        actions,
        steps: Vec::new(),
        vm: VmSpec::default(),
    })
}

fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    field(object, key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// One action: `{comment, type, op}`.
fn action(entry: &Value, dirs: Dirs<'_>) -> Result<Action, String> {
    let object = entry.as_object().ok_or("is not an object")?;
    let kind = field(object, "type")
        .and_then(Value::as_str)
        .ok_or("has no `type`")?;
    let empty = Map::new();
    let op = field(object, "op")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let arg = |key: &str| -> Result<String, String> {
        field(op, key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("`{kind}` needs `op.{key}`"))
    };
    let cwd_file = |key: &str| arg(key).map(|p| host_file(&p, dirs.cwd));
    Ok(match kind {
        "run-command" => Action::RunCommand { cmd: arg("Cmd")? },
        "copy-in" => Action::CopyIn {
            local: cwd_file("LocalPath")?,
            remote_dir: arg("RemoteDir")?,
        },
        "set-hostname" => Action::SetHostname {
            hostname: arg("Hostname")?,
        },
        "mkdir" => Action::Mkdir { dir: arg("Dir")? },
        "upload" => Action::Upload {
            file: cwd_file("File")?,
            dest: arg("Dest")?,
        },
        "chmod" => Action::Chmod {
            mode: arg("Permissions")?,
            file: arg("File")?,
        },
        "append-line" => Action::AppendLine {
            file: arg("File")?,
            line: arg("Line")?,
        },
        "link" => Action::Link {
            target: arg("Target")?,
            link: arg("Link")?,
        },
        "install-kernel" => Action::InstallKernel {
            dir: host_file(&arg("KernelInstallDir")?, dirs.file_dir),
        },
        "tar-in" => Action::TarIn {
            tar: cwd_file("TarFile")?,
            remote_dir: arg("RemoteDir")?,
        },
        other => return Err(format!("unknown op type '{other}'")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HostFile;

    const EXAMPLE: &str = r#"[
  {"name": "base.qcow2", "packages": ["less", "openssh-server"],
   "actions": [{"comment": "disable password for root", "type": "run-command", "op": {"Cmd": "passwd -d root"}}]},
  {"name": "k8s.qcow2", "parent": "base.qcow2", "image_size": "12G", "packages": ["docker.io"],
   "actions": [
     {"type": "copy-in", "op": {"LocalPath": "files/etc", "RemoteDir": "/"}},
     {"type": "set-hostname", "op": {"hostname": "k8s"}},
     {"type": "mkdir", "op": {"Dir": "/opt/x"}},
     {"type": "upload", "op": {"File": "a.sh", "Dest": "/opt/x/a.sh"}},
     {"type": "chmod", "op": {"Permissions": "0755", "File": "/opt/x/a.sh"}},
     {"type": "append-line", "op": {"File": "/etc/motd", "Line": "hi"}},
     {"type": "link", "op": {"Target": "/opt/x/a.sh", "Link": "/usr/local/bin/a"}},
     {"type": "install-kernel", "op": {"KernelInstallDir": "_data/kernels/6.6"}},
     {"type": "tar-in", "op": {"TarFile": "t.tar", "RemoteDir": "/srv"}}
   ]}
]"#;

    #[test]
    fn reads_lvh_configuration_verbatim() {
        let file = parse(EXAMPLE, Path::new("/d/images.json"), "sid", Path::new("/w")).unwrap();
        let [base, k8s] = &file.images[..] else {
            panic!("{file:?}")
        };
        assert_eq!(
            base.origin,
            Origin::Debian(DebianRoot {
                suite: "sid".into(),
                mirror: None,
                variant: None,
                kernel: Some("linux-image-amd64".into())
            })
        );
        assert_eq!(base.size, Some(8 << 30));
        assert_eq!(base.packages, ["less", "openssh-server"]);
        assert_eq!(
            base.actions,
            [Action::RunCommand {
                cmd: "passwd -d root".into()
            }]
        );
        assert_eq!(k8s.origin, Origin::Parent("base.qcow2".into()));
        assert_eq!(k8s.size, Some(12 << 30));
        assert!(k8s.packages.is_empty());
        assert_eq!(
            k8s.actions[0],
            Action::Install {
                packages: vec!["docker.io".into()]
            }
        );
        assert_eq!(k8s.actions.len(), 10);
        assert_eq!(
            k8s.actions[2],
            Action::SetHostname {
                hostname: "k8s".into()
            }
        );
        let Action::CopyIn { local, .. } = &k8s.actions[1] else {
            panic!()
        };
        assert_eq!(local.path, Path::new("/w/files/etc"));
        assert_eq!(
            k8s.actions[8],
            Action::InstallKernel {
                dir: HostFile {
                    written: "_data/kernels/6.6".into(),
                    path: "/d/_data/kernels/6.6".into()
                }
            }
        );
    }

    #[test]
    fn unknown_types_and_missing_fields_are_errors() {
        let bad = r#"[{"name": "a", "actions": [{"type": "frob", "op": {}}]}]"#;
        let error = parse(bad, Path::new("i.json"), "sid", Path::new("/")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "i.json: image a: action 1: unknown op type 'frob'"
        );
        let missing = r#"[{"name": "a", "actions": [{"type": "mkdir", "op": {}}]}]"#;
        let error = parse(missing, Path::new("i.json"), "sid", Path::new("/")).unwrap_err();
        assert!(
            error.to_string().contains("`mkdir` needs `op.Dir`"),
            "{error}"
        );
        let not_bootable = r#"[{"name": "a", "bootable": false}]"#;
        let file = parse(not_bootable, Path::new("i.json"), "sid", Path::new("/")).unwrap();
        assert!(matches!(&file.images[0].origin, Origin::Debian(root) if root.kernel.is_none()));
    }
}
