//! sarde's build file (YAML; the schema is `docs/build.md`'s): `defaults` and `images`, each
//! image a root (`from: debian:<suite>`) or derived (`parent:`) one, with users, `actions`
//! (each a one-key map, `- run-command: make install`) and `steps` run over SSH in the booted
//! image (`- ssh: make install`).
//!
//! Unknown keys and unknown action types are errors, reported with their line and column.

use std::path::Path;

use serde::Deserialize;

use crate::error::BuildError;
use crate::spec::{
    Action, BuildFile, DebianRoot, HostFile, ImageSpec, Origin, Step, UserSpec, VmSpec,
};

/// The kernel of bootable root images unless they name another.
const DEFAULT_KERNEL: &str = "linux-image-amd64";

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Defaults,
    images: Vec<Image>,
}

/// What every image of the file inherits unless it says otherwise.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    mirror: Option<String>,
    #[serde(default)]
    vm: Vm,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    name: String,
    from: Option<String>,
    parent: Option<String>,
    mirror: Option<String>,
    variant: Option<String>,
    bootable: Option<bool>,
    kernel: Option<String>,
    size: Option<String>,
    #[serde(default)]
    packages: Vec<String>,
    hostname: Option<String>,
    #[serde(default)]
    users: Vec<User>,
    // Each action is a one-key map (`- run-command: make`), not a YAML tag.
    #[serde(default, with = "yaml_serde::with::singleton_map_recursive")]
    actions: Vec<YamlAction>,
    #[serde(default, with = "yaml_serde::with::singleton_map_recursive")]
    steps: Vec<YamlStep>,
    #[serde(default)]
    vm: Vm,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    name: String,
    password: Option<String>,
    #[serde(default)]
    ssh_keys: Vec<String>,
    #[serde(default)]
    sudo: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vm {
    memory: Option<String>,
    cpus: Option<u32>,
    domain_type: Option<String>,
    network: Option<String>,
    cmdline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum YamlAction {
    RunCommand(String),
    CopyIn { local: String, remote_dir: String },
    SetHostname(String),
    Mkdir(String),
    Upload { file: String, dest: String },
    Chmod { mode: String, file: String },
    AppendLine { file: String, line: String },
    Link { target: String, link: String },
    InstallKernel(String),
    TarIn { tar: String, remote_dir: String },
    SshInject { user: String, key: String },
    Password { user: String, password: String },
    Timezone(String),
    Firstboot(String),
    Install(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum YamlStep {
    Ssh(String),
    SshUpload { file: String, dest: String },
}

/// Reads a YAML build file's text; `path` is where it came from.
pub fn parse(text: &str, path: &Path) -> Result<BuildFile, BuildError> {
    let file: File = yaml_serde::from_str(text).map_err(|e| BuildError::Syntax {
        file: path.to_path_buf(),
        what: e.to_string(),
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut images = Vec::new();
    for image in file.images {
        images.push(convert(image, &file.defaults, &base_dir, path)?);
    }
    Ok(BuildFile {
        path: path.to_path_buf(),
        base_dir,
        images,
    })
}

fn convert(
    image: Image,
    defaults: &Defaults,
    base_dir: &Path,
    path: &Path,
) -> Result<ImageSpec, BuildError> {
    let invalid = |what: String| BuildError::Invalid {
        file: path.to_path_buf(),
        image: image.name.clone(),
        what,
    };
    let origin = match (&image.from, &image.parent) {
        (Some(from), None) => {
            let suite = from.strip_prefix("debian:").ok_or_else(|| {
                invalid(format!(
                    "`from: {from}`: root images are made from Debian (`from: debian:<suite>`); derive other systems from an image with `parent:`"
                ))
            })?;
            let kernel = image.kernel.as_deref().unwrap_or(DEFAULT_KERNEL);
            Origin::Debian(DebianRoot {
                suite: suite.to_owned(),
                mirror: image.mirror.clone().or_else(|| defaults.mirror.clone()),
                variant: Some(image.variant.as_deref().unwrap_or("apt").to_owned()),
                kernel: image.bootable.unwrap_or(true).then(|| kernel.to_owned()),
            })
        }
        (None, Some(parent)) => Origin::Parent(parent.clone()),
        (Some(_), Some(_)) => return Err(invalid("has both `from` and `parent`".into())),
        (None, None) => return Err(invalid("needs `from: debian:<suite>` or `parent:`".into())),
    };
    let size = image
        .size
        .as_deref()
        .map(|s| parse_size(s, "size"))
        .transpose()
        .map_err(invalid)?;
    let vm = vm_spec(&image.vm, &defaults.vm).map_err(invalid)?;
    let host = |written: &str| host_file(written, base_dir);
    let actions = image
        .actions
        .into_iter()
        .map(|a| action(a, &host))
        .collect();
    let steps = image
        .steps
        .into_iter()
        .map(|step| match step {
            YamlStep::Ssh(cmd) => Step::Ssh { cmd },
            YamlStep::SshUpload { file, dest } => Step::SshUpload {
                file: host(&file),
                dest,
            },
        })
        .collect();
    let users = image
        .users
        .into_iter()
        .map(|u| UserSpec {
            name: u.name,
            password: u.password,
            ssh_keys: u.ssh_keys,
            sudo: u.sudo,
        })
        .collect();
    Ok(ImageSpec {
        name: image.name,
        origin,
        size,
        packages: image.packages,
        hostname: image.hostname,
        users,
        actions,
        steps,
        vm,
    })
}

fn action(action: YamlAction, host: &dyn Fn(&str) -> HostFile) -> Action {
    match action {
        YamlAction::RunCommand(cmd) => Action::RunCommand { cmd },
        YamlAction::CopyIn { local, remote_dir } => Action::CopyIn {
            local: host(&local),
            remote_dir,
        },
        YamlAction::SetHostname(hostname) => Action::SetHostname { hostname },
        YamlAction::Mkdir(dir) => Action::Mkdir { dir },
        YamlAction::Upload { file, dest } => Action::Upload {
            file: host(&file),
            dest,
        },
        YamlAction::Chmod { mode, file } => Action::Chmod { mode, file },
        YamlAction::AppendLine { file, line } => Action::AppendLine { file, line },
        YamlAction::Link { target, link } => Action::Link { target, link },
        YamlAction::InstallKernel(dir) => Action::InstallKernel { dir: host(&dir) },
        YamlAction::TarIn { tar, remote_dir } => Action::TarIn {
            tar: host(&tar),
            remote_dir,
        },
        YamlAction::SshInject { user, key } => Action::SshInject { user, key },
        YamlAction::Password { user, password } => Action::Password { user, password },
        YamlAction::Timezone(zone) => Action::Timezone { zone },
        YamlAction::Firstboot(cmd) => Action::Firstboot { cmd },
        YamlAction::Install(packages) => Action::Install { packages },
    }
}

/// A host path of the build file, resolved against its directory.
pub(crate) fn host_file(written: &str, base_dir: &Path) -> HostFile {
    HostFile {
        written: written.to_owned(),
        path: base_dir.join(written),
    }
}

fn vm_spec(image: &Vm, defaults: &Vm) -> Result<VmSpec, String> {
    let base = VmSpec::default();
    let memory = image.memory.as_deref().or(defaults.memory.as_deref());
    let memory_mib = match memory {
        Some(text) => parse_size(text, "vm.memory")? >> 20,
        None => base.memory_mib,
    };
    let pick = |mine: &Option<String>, theirs: &Option<String>, default: String| {
        mine.clone().or_else(|| theirs.clone()).unwrap_or(default)
    };
    let domain_type = pick(&image.domain_type, &defaults.domain_type, base.domain_type);
    if !matches!(domain_type.as_str(), "kvm" | "qemu") {
        return Err(format!(
            "`vm.domain_type: {domain_type}`: it is `kvm` or `qemu` (emulation, for hosts without KVM)"
        ));
    }
    Ok(VmSpec {
        memory_mib,
        cpus: image.cpus.or(defaults.cpus).unwrap_or(base.cpus),
        domain_type,
        network: pick(&image.network, &defaults.network, base.network),
        cmdline: pick(&image.cmdline, &defaults.cmdline, base.cmdline),
    })
}

fn parse_size(text: &str, key: &str) -> Result<u64, String> {
    sardine_config::parse_size(text).map_err(|e| format!("`{key}: {text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<BuildFile, BuildError> {
        parse(text, Path::new("/b/build.yaml"))
    }

    #[test]
    fn root_and_derived_images() {
        let file = parse_text(
            "defaults: {vm: {domain_type: qemu}}
images:
  - name: debian
    from: debian:bookworm
    size: 2GiB
    packages: [openssh-server]
    users: [{name: sarde, password: pw, sudo: true}]
  - name: dev
    parent: debian
    actions:
      - run-command: touch /x
      - copy-in: {local: files/a, remote_dir: /opt}
      - ssh-inject: {user: sarde, key: ssh-ed25519 AAAA}
      - chmod: {mode: '0755', file: /opt/a}
      - install: [make]
    steps:
      - ssh: echo hi
    vm: {memory: 2GiB, network: test}
",
        )
        .unwrap();
        let [root, dev] = &file.images[..] else {
            panic!("{file:?}")
        };
        assert_eq!(
            root.origin,
            Origin::Debian(DebianRoot {
                suite: "bookworm".into(),
                mirror: None,
                variant: Some("apt".into()),
                kernel: Some(DEFAULT_KERNEL.into()),
            })
        );
        assert_eq!(root.size, Some(2 << 30));
        assert_eq!(root.vm.domain_type, "qemu");
        assert!(root.users[0].sudo);
        assert_eq!(dev.origin, Origin::Parent("debian".into()));
        assert_eq!(dev.actions.len(), 5);
        assert_eq!(
            dev.actions[1],
            Action::CopyIn {
                local: HostFile {
                    written: "files/a".into(),
                    path: "/b/files/a".into()
                },
                remote_dir: "/opt".into()
            }
        );
        assert_eq!(dev.vm.memory_mib, 2048);
        assert_eq!(dev.vm.network, "test");
        assert_eq!(dev.vm.domain_type, "qemu");
        assert_eq!(
            dev.steps,
            vec![Step::Ssh {
                cmd: "echo hi".into()
            }]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let unknown = parse_text(
            "images:\n  - name: a\n    from: debian:sid\n    actions:\n      - frobnicate: x\n",
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("frobnicate"), "{unknown}");
        assert!(unknown.contains("line 5"), "{unknown}");
        let key = parse_text("images:\n  - name: a\n    from: debian:sid\n    colour: red\n")
            .unwrap_err()
            .to_string();
        assert!(key.contains("colour"), "{key}");
        let from = parse_text("images:\n  - name: a\n    from: alpine:3\n")
            .unwrap_err()
            .to_string();
        assert!(
            from.contains("image a") && from.contains("parent:"),
            "{from}"
        );
        let neither = parse_text("images:\n  - name: a\n")
            .unwrap_err()
            .to_string();
        assert!(neither.contains("needs `from"), "{neither}");
        let kind =
            parse_text("images:\n  - name: a\n    from: debian:sid\n    vm: {domain_type: xen}\n")
                .unwrap_err()
                .to_string();
        assert!(kind.contains("xen"), "{kind}");
    }
}
