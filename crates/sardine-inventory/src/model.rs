//! The typed parts of a vm-provisioner-libvirt registry, with vmp's field names, defaults and
//! strictness (unknown keys are errors everywhere except in templates, which are free-form until
//! a VM made from them is checked as a whole).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// vmp's default tag of an image reference (`name` is `name:latest`).
pub const DEFAULT_IMAGE_TAG: &str = "latest";
/// vmp's default volume format.
pub const DEFAULT_FORMAT: &str = "qcow2";

fn default_format() -> String {
    DEFAULT_FORMAT.into()
}

/// The merged registry: nodes, images, templates and VMs.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// libvirt hosts.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Images and their tags.
    #[serde(default)]
    pub images: Vec<ImageDef>,
    /// Templates VMs inherit from.
    #[serde(default)]
    pub templates: Vec<Map<String, Value>>,
    /// The VMs (free-form until resolved).
    #[serde(default)]
    pub vms: Vec<Map<String, Value>>,
}

/// A libvirt host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Its variables.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// How to reach its libvirt.
    pub libvirt: NodeLibvirt,
}

/// A node's libvirt.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLibvirt {
    /// The connection.
    pub connection: Connection,
}

/// A libvirt connection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Its URI (`qemu:///system`, `qemu+ssh://host/system`).
    pub uri: String,
}

/// An image with the tags it resolves.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDef {
    /// Its name.
    pub name: String,
    /// Its variables.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Tag patterns, tried in order.
    pub tags: Vec<Tag>,
}

/// A tag pattern of an image: a regular expression whose named groups fill `url`,
/// `volumeName` and `archive.path`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tag {
    /// The expression (matched at the start of the tag, as Python's `re.match`).
    pub pattern: String,
    /// Variables of images with this tag.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Where the image is downloaded from.
    pub url: String,
    /// The name of its volume.
    pub volume_name: String,
    /// The volume format.
    #[serde(default = "default_format")]
    pub format: String,
    /// How the download is packed.
    #[serde(default)]
    pub archive: Option<Archive>,
}

/// A packed download.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// `xz` or `7z`.
    #[serde(rename = "type")]
    pub kind: ArchiveType,
    /// The file inside a 7z archive.
    #[serde(default)]
    pub path: Option<String>,
}

/// The archive formats vmp unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ArchiveType {
    /// `xz -dc`.
    #[serde(rename = "xz")]
    Xz,
    /// `7z e`.
    #[serde(rename = "7z")]
    SevenZip,
}

/// An image resolved for one tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Its name.
    pub name: String,
    /// The image's and the tag's variables.
    pub vars: BTreeMap<String, String>,
    /// The tag.
    pub tag: String,
    /// Where it is downloaded from.
    pub url: String,
    /// The name of its volume.
    pub volume_name: String,
    /// The volume format.
    pub format: String,
    /// How the download is packed.
    pub archive: Option<Archive>,
}

/// A VM, resolved: its templates merged in and its variables expanded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Vm {
    /// Its name.
    pub name: String,
    /// The node it runs on.
    pub node_name: String,
    /// Its image (`name[:tag]`).
    pub image: String,
    /// Its variables.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The provisioner that `gen` writes (`v1alpha1`).
    pub provisioner: String,
    /// Its libvirt objects.
    pub libvirt: VmLibvirt,
    /// Its cloud-init seed.
    #[serde(default)]
    pub cloud_init: Option<CloudInit>,
    /// How to log in.
    #[serde(default)]
    pub ssh: Option<Ssh>,
}

/// A VM's domain, pools and volumes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VmLibvirt {
    /// The domain, made by virt-install.
    pub domain: Domain,
    /// Directory pools.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// Volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// A domain and its virt-install options.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Domain {
    /// Its name.
    pub name: String,
    /// virt-install's options: a value, a flag, or a list of `{name, options}`.
    #[serde(default)]
    pub virt_install: BTreeMap<String, Value>,
}

/// What happens to a pool or volume on `delete` (`Retain`: only `delete-all` removes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DeletionPolicy {
    /// Removed by `delete`.
    #[default]
    Delete,
    /// Kept by `delete`, removed by `delete-all`.
    Retain,
}

/// A directory pool.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// What `delete` does to it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Its directory.
    pub directory: PathSpec,
}

/// `{path: ...}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    /// The path.
    pub path: String,
}

/// A volume: blank, an overlay on a backing volume, or uploaded from a file (tried in this
/// order, as vmp's model does).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Volume {
    /// A blank volume.
    Blank(BlankVolume),
    /// An overlay.
    Backing(BackingVolume),
    /// Uploaded from a file.
    Upload(UploadVolume),
}

/// A blank volume.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BlankVolume {
    /// Its name.
    pub name: String,
    /// Its pool.
    pub pool_name: String,
    /// Its format.
    #[serde(default = "default_format")]
    pub format: String,
    /// What `delete` does to it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Its size.
    pub capacity: String,
}

/// An overlay on another volume.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackingVolume {
    /// Its name.
    pub name: String,
    /// Its pool.
    pub pool_name: String,
    /// Its format.
    #[serde(default = "default_format")]
    pub format: String,
    /// What `delete` does to it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Its size (the backing volume's by default).
    #[serde(default)]
    pub capacity: Option<String>,
    /// The volume below.
    pub backing_volume: VolumeRef,
}

/// A volume uploaded from a file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UploadVolume {
    /// Its name.
    pub name: String,
    /// Its pool.
    pub pool_name: String,
    /// Its format.
    #[serde(default = "default_format")]
    pub format: String,
    /// What `delete` does to it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Its size (the file's by default).
    #[serde(default)]
    pub capacity: Option<String>,
    /// The file.
    pub upload_file: PathSpec,
}

/// Another volume.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeRef {
    /// Its name.
    pub name: String,
    /// Its pool.
    pub pool_name: String,
    /// Its format.
    #[serde(default = "default_format")]
    pub format: String,
}

/// A cloud-init NoCloud seed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudInit {
    /// The seed.
    pub no_cloud: NoCloud,
}

/// The seed's data and where the ISO goes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoCloud {
    /// The documents.
    pub data: NoCloudData,
    /// The ISO.
    pub seed: PathSpec,
}

/// The documents of a seed, each a map (written as YAML) or a string (as it is).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoCloudData {
    /// `meta-data`.
    #[serde(rename = "meta-data", default = "empty_map")]
    pub meta_data: Value,
    /// `user-data`.
    #[serde(rename = "user-data", default = "empty_map")]
    pub user_data: Value,
    /// `vendor-data`.
    #[serde(rename = "vendor-data", default)]
    pub vendor_data: Option<Value>,
    /// `network-config`.
    #[serde(rename = "network-config", default)]
    pub network_config: Option<Value>,
}

fn empty_map() -> Value {
    Value::Object(Map::new())
}

/// How to log in to the VM.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// The user.
    #[serde(default)]
    pub user: Option<String>,
    /// The host (its address by default).
    #[serde(default)]
    pub host: Option<String>,
    /// A password (used with sshpass).
    #[serde(default)]
    pub password: Option<String>,
    /// `-o` options: a value, values, or none.
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}

/// What `config` prints: the resolved VM with its node, image and variables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// All variables, expanded, sorted.
    pub vars: BTreeMap<String, String>,
    /// The image.
    pub image: Image,
    /// The node.
    pub node: Node,
    /// The VM.
    pub vm: Vm,
}
