//! Resolving a VM as vm-provisioner-libvirt does: its templates merged in (single inheritance
//! `template:`, multiple `templates: [a, b]`, recursively, parents first), its image's tag
//! matched against the tag patterns (named groups fill the URL and volume name), its variables
//! merged with vmp's precedence (defaults < node < image < VM < built-ins) and expanded
//! recursively, then every string of the VM expanded with them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::InventoryError;
use crate::format::{self, FormatError};
use crate::merge::strategic_merge;
use crate::model::{Config, DEFAULT_IMAGE_TAG, Image, Node, Registry, Vm};

/// vmp's default variables.
pub const DEFAULT_VARS: [(&str, &str); 4] = [
    ("DEFAULT_IMAGE_DIR", ".images"),
    ("DEFAULT_NETWORK_NAME", "default"),
    ("DEFAULT_POOL_NAME", "default"),
    ("DEFAULT_POOL_PATH", "/var/lib/libvirt/images"),
];

/// The VMs' names, in the registry's order.
pub fn list(registry: &Registry) -> Vec<String> {
    registry
        .vms
        .iter()
        .filter_map(|vm| vm.get("name")?.as_str().map(str::to_owned))
        .collect()
}

/// The resolved configuration of the VM `name`.
pub fn config(registry: &Registry, name: &str) -> Result<Config, InventoryError> {
    let merged = vm_document(registry, name)?;
    let raw: Vm = serde_json::from_value(Value::Object(merged.clone())).map_err(|e| {
        InventoryError::Invalid {
            origin: format!("VM {name}"),
            what: e.to_string(),
        }
    })?;
    let node = registry
        .nodes
        .iter()
        .find(|n| n.name == raw.node_name)
        .cloned()
        .ok_or_else(|| InventoryError::NotFound {
            kind: "node",
            name: raw.node_name.clone(),
            context: Some(format!("VM {name}")),
        })?;
    let image = image(registry, &raw.image)?;
    let vars = format::expand_vars(&merge_vars(&raw, &node, &image)).map_err(|source| {
        InventoryError::Format {
            origin: format!("VM {name}"),
            source,
        }
    })?;
    let formatted =
        deep_format(&Value::Object(merged), &vars).map_err(|source| InventoryError::Format {
            origin: format!("VM {name}"),
            source,
        })?;
    let vm: Vm = serde_json::from_value(formatted).map_err(|e| InventoryError::Invalid {
        origin: format!("VM {name}"),
        what: e.to_string(),
    })?;
    Ok(Config {
        vars,
        image,
        node,
        vm,
    })
}

/// The variables of a VM before expansion, with vmp's precedence.
fn merge_vars(vm: &Vm, node: &Node, image: &Image) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = DEFAULT_VARS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.extend(node.vars.clone());
    vars.extend(image.vars.clone());
    vars.extend(vm.vars.clone());
    let builtins = [
        ("IMAGE_FORMAT", &image.format),
        ("IMAGE_NAME", &image.name),
        ("IMAGE_TAG", &image.tag),
        ("IMAGE_URL", &image.url),
        ("IMAGE_VOLUME_NAME", &image.volume_name),
        ("NODE_NAME", &node.name),
        ("VM_NAME", &vm.name),
    ];
    vars.extend(builtins.iter().map(|(k, v)| (k.to_string(), (*v).clone())));
    vars
}

/// Every string of `value` expanded with `vars`.
fn deep_format(value: &Value, vars: &BTreeMap<String, String>) -> Result<Value, FormatError> {
    Ok(match value {
        Value::String(s) => Value::String(format::format_map(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| deep_format(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), deep_format(v, vars)?)))
                .collect::<Result<_, FormatError>>()?,
        ),
        other => other.clone(),
    })
}

/// The VM's document with its templates merged in, without `template`/`templates`.
fn vm_document(registry: &Registry, name: &str) -> Result<Map<String, Value>, InventoryError> {
    let vm = find(&registry.vms, name).ok_or_else(|| InventoryError::NotFound {
        kind: "VM",
        name: name.to_owned(),
        context: None,
    })?;
    let mut merged = inherit(registry, vm, &mut Vec::new())?;
    merged.remove("template");
    merged.remove("templates");
    Ok(merged)
}

fn find<'r>(list: &'r [Map<String, Value>], name: &str) -> Option<&'r Map<String, Value>> {
    list.iter()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
}

/// `item` merged onto what it inherits (`templates` wins over `template`, as in vmp's model).
fn inherit(
    registry: &Registry,
    item: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<Map<String, Value>, InventoryError> {
    let parents: Vec<String> = match (item.get("templates"), item.get("template")) {
        (Some(Value::Array(list)), _) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        (_, Some(Value::String(one))) => vec![one.clone()],
        _ => return Ok(item.clone()),
    };
    let own = item
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut merged = Map::new();
    for parent in parents {
        if path.contains(&parent) || parent == own {
            let mut cycle = path.clone();
            cycle.extend([own.clone(), parent]);
            return Err(InventoryError::TemplateCycle(cycle));
        }
        let template =
            find(&registry.templates, &parent).ok_or_else(|| InventoryError::NotFound {
                kind: "template",
                name: parent.clone(),
                context: Some(format!("inherited by {own}")),
            })?;
        path.push(own.clone());
        let base = inherit(registry, template, path)?;
        path.pop();
        merged = strategic_merge(&merged, &base);
    }
    Ok(strategic_merge(&merged, item))
}

/// The image `reference` (`name[:tag]`) resolved by its first matching tag pattern.
pub fn image(registry: &Registry, reference: &str) -> Result<Image, InventoryError> {
    let (name, tag) = reference
        .split_once(':')
        .unwrap_or((reference, DEFAULT_IMAGE_TAG));
    let def = registry
        .images
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| InventoryError::NotFound {
            kind: "image",
            name: name.to_owned(),
            context: None,
        })?;
    for pattern in &def.tags {
        // Python's re.match: anchored at the start only.
        let regex = regex::Regex::new(&format!("^(?:{})", pattern.pattern)).map_err(|e| {
            InventoryError::Invalid {
                origin: format!("image {name}"),
                what: format!("tag pattern {:?}: {e}", pattern.pattern),
            }
        })?;
        let Some(captures) = regex.captures(tag) else {
            continue;
        };
        let groups: BTreeMap<String, String> = regex
            .capture_names()
            .flatten()
            .filter_map(|group| Some((group.to_owned(), captures.name(group)?.as_str().to_owned())))
            .collect();
        let fill = |text: &str| {
            format::format_map(text, &groups).map_err(|source| InventoryError::Format {
                origin: format!("image {name} tag {tag}"),
                source,
            })
        };
        let mut archive = pattern.archive.clone();
        if let Some(archive) = &mut archive
            && let Some(path) = &archive.path
        {
            archive.path = Some(fill(path)?);
        }
        let mut vars = def.vars.clone();
        vars.extend(pattern.vars.clone());
        return Ok(Image {
            name: name.to_owned(),
            vars,
            tag: tag.to_owned(),
            url: fill(&pattern.url)?,
            volume_name: fill(&pattern.volume_name)?,
            format: pattern.format.clone(),
            archive,
        });
    }
    Err(InventoryError::NoTag {
        image: name.to_owned(),
        tag: tag.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, parse_document};
    use crate::model::{DeletionPolicy, Volume};

    /// A registry in the shape of vmp's examples: a live ISO image with a versioned tag pattern,
    /// a node, templates with single and multiple inheritance, two VMs.
    const REGISTRY: &str = r#"
images:
  - name: tiny-live
    vars: {OWNER: image}
    tags:
      - pattern: (?P<major>\d+)\.(?P<minor>\d+)
        url: http://127.0.0.1:8080/v{major}.{minor}/tiny-{major}.{minor}.iso
        volumeName: tiny-{major}.{minor}.iso
        vars: {TAG_VAR: tagged}
      - pattern: latest
        url: http://127.0.0.1:8080/latest/tiny.iso
        volumeName: tiny-latest.iso
        format: raw
        archive: {type: xz}
nodes:
  - name: local
    vars: {OWNER: node, NODE_ONLY: n}
    libvirt:
      connection: {uri: "qemu:///system"}
templates:
  - name: common
    provisioner: v1alpha1
    vars: {DISK_DIR: "{DEFAULT_POOL_PATH}/{VM_NAME}"}
    libvirt:
      domain:
        name: "{VM_NAME}"
        virtInstall: {osinfo: linux2022}
  - name: live
    template: common
    libvirt:
      domain:
        virtInstall:
          disk:
            - name: live
              options: {vol: "{DEFAULT_POOL_NAME}/{IMAGE_VOLUME_NAME}", device: cdrom}
      volumes:
        - name: "{IMAGE_VOLUME_NAME}"
          poolName: "{DEFAULT_POOL_NAME}"
          format: "{IMAGE_FORMAT}"
          deletionPolicy: Retain
          uploadFile: {path: "{DEFAULT_IMAGE_DIR}/{IMAGE_VOLUME_NAME}"}
  - name: big
    libvirt:
      domain:
        virtInstall: {memory: "4096", osinfo: generic}
vms:
  - name: vm1
    templates: [live, big]
    nodeName: local
    image: tiny-live:3.20
    vars: {OWNER: vm}
    libvirt:
      domain:
        virtInstall: {vcpus: "2"}
  - name: vm2
    template: live
    nodeName: local
    image: tiny-live
"#;

    fn registry(text: &str) -> Registry {
        serde_json::from_value(Value::Object(parse_document(text, "test").unwrap())).unwrap()
    }

    #[test]
    fn resolves_templates_tags_and_variables() {
        let config = config(&registry(REGISTRY), "vm1").unwrap();
        // Multiple inheritance in order: `big` after `live` wins for osinfo; the VM's own last.
        let install = &config.vm.libvirt.domain.virt_install;
        assert_eq!(install["osinfo"], "generic");
        assert_eq!(install["memory"], "4096");
        assert_eq!(install["vcpus"], "2");
        assert_eq!(config.vm.libvirt.domain.name, "vm1");
        assert_eq!(
            config.image.url,
            "http://127.0.0.1:8080/v3.20/tiny-3.20.iso"
        );
        assert_eq!(config.image.volume_name, "tiny-3.20.iso");
        // Precedence: defaults < node < image < VM < built-ins.
        assert_eq!(config.vars["OWNER"], "vm");
        assert_eq!(config.vars["NODE_ONLY"], "n");
        assert_eq!(config.vars["TAG_VAR"], "tagged");
        assert_eq!(config.vars["DISK_DIR"], "/var/lib/libvirt/images/vm1");
        assert_eq!(config.vars["IMAGE_TAG"], "3.20");
        let Volume::Upload(volume) = &config.vm.libvirt.volumes[0] else {
            panic!("{:?}", config.vm.libvirt.volumes)
        };
        assert_eq!(volume.name, "tiny-3.20.iso");
        assert_eq!(volume.pool_name, "default");
        assert_eq!(volume.deletion_policy, DeletionPolicy::Retain);
        assert_eq!(volume.upload_file.path, ".images/tiny-3.20.iso");
        // No tag: `latest`, the second pattern, with its format and archive.
        let vm2 = super::config(&registry(REGISTRY), "vm2").unwrap();
        assert_eq!(vm2.image.tag, "latest");
        assert_eq!(vm2.image.format, "raw");
        assert_eq!(vm2.vars["IMAGE_FORMAT"], "raw");
        assert_eq!(list(&registry(REGISTRY)), ["vm1", "vm2"]);
    }

    #[test]
    fn errors_name_what_is_missing_or_circular() {
        let reg = registry(REGISTRY);
        assert_eq!(
            config(&reg, "nope").unwrap_err().to_string(),
            "no VM is called nope"
        );
        assert_eq!(
            image(&reg, "tiny-live:beta").unwrap_err().to_string(),
            "image tiny-live: no tag pattern matches the tag \"beta\""
        );
        let cyclic = REGISTRY.replace(
            "  - name: common\n",
            "  - name: common\n    template: live\n",
        );
        let error = config(&registry(&cyclic), "vm2").unwrap_err().to_string();
        assert!(error.contains("cycle"), "{error}");
        let unresolved = REGISTRY.replace(
            "{VM_NAME}\"\n        virtInstall",
            "{NO_SUCH}\"\n        virtInstall",
        );
        let error = config(&registry(&unresolved), "vm1")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "VM vm1: unresolved variable {NO_SUCH}");
        let loop_vars = REGISTRY.replace(
            "vars: {OWNER: vm}",
            "vars: {OWNER: \"{X}\", X: \"{OWNER}\"}",
        );
        let error = config(&registry(&loop_vars), "vm1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("cycle: OWNER -> X -> OWNER"), "{error}");
        let missing_template =
            REGISTRY.replace("templates: [live, big]", "templates: [live, huge]");
        let error = config(&registry(&missing_template), "vm1")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "no template is called huge (inherited by vm1)");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let typo = REGISTRY.replace(
            "nodeName: local\n    image: tiny-live:3.20",
            "nodeName: local\n    imag: x\n    image: tiny-live:3.20",
        );
        let error = config(&registry(&typo), "vm1").unwrap_err().to_string();
        assert!(error.contains("unknown field `imag`"), "{error}");
        let document = parse_document(
            "nodes:\n  - name: a\n    libvirt: {connection: {uri: x, user: y}}\n",
            "t",
        )
        .unwrap();
        let error = serde_json::from_value::<Registry>(Value::Object(document))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `user`"), "{error}");
    }

    #[test]
    fn files_of_a_glob_merge_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, text).unwrap();
        };
        write("b/vms.yaml", "vms:\n  - {name: vm1, vars: {A: from-b}}\n");
        write("a/base.yaml", REGISTRY);
        write(
            "c/more.yaml",
            "vms:\n  - {name: vm1, vars: {B: from-c}}\n  - {name: vm3, template: live, nodeName: local, image: tiny-live}\n",
        );
        let pattern = format!("{}/**/*.yaml", dir.path().display());
        let reg = load(Some(&pattern)).unwrap();
        assert_eq!(list(&reg), ["vm1", "vm2", "vm3"]);
        let vm1 = config(&reg, "vm1").unwrap();
        assert_eq!(vm1.vars["A"], "from-b");
        assert_eq!(vm1.vars["B"], "from-c");
        // Maps merge key by key: the VM's own OWNER of the first file stays.
        assert_eq!(vm1.vars["OWNER"], "vm");
        let none = load(Some(&format!("{}/*.json", dir.path().display())))
            .unwrap_err()
            .to_string();
        assert!(none.contains("no registry file matches"), "{none}");
    }
}
