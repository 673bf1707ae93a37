//! The build: each image of the plan, parents first, is reused from the cache when its key is
//! there, else built in a staging directory (a root image from mmdebstrap's tree, a derived
//! one as an overlay on its parent's disk, changed offline), committed to the cache, and
//! exported into the local store under `<prefix><name>:<tag>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sardine_vm::export::{DiskFormat, ExportOptions};
use sardine_vm::import::ImportOptions;
use sardine_vm::remote::RegistryAccess;
use sardine_vm::store::LocalImage;
use sardine_vm::{DomainXml, Progress, Reference, RegistryProgress, Store};

use crate::cache::{self, Cache};
use crate::chroot::Chroot;
use crate::disk::{self, Mounted};
use crate::error::BuildError;
use crate::output::{self, BootFiles};
use crate::spec::{Action, BuildFile, DebianRoot, ImageSpec, Origin, UserSpec};
use crate::tool::StepContext;

/// The disk size of a root image that does not give one.
pub const DEFAULT_ROOT_SIZE: u64 = 4 << 30;

/// What to build and where.
pub struct BuildOptions<'a> {
    /// The images to build (empty: all), with their parents.
    pub images: &'a [String],
    /// Build even what the cache has.
    pub force_rebuild: bool,
    /// Only say what would be built, and why.
    pub dry_run: bool,
    /// Put before each image's name to make its reference (`registry.example.org/vms/`).
    pub prefix: &'a str,
    /// The tag of the built images.
    pub tag: &'a str,
    /// The build cache.
    pub cache_dir: &'a Path,
    /// The local store the images go to (and parents outside the file come from).
    pub store: &'a Store,
    /// libvirt URI, for parents outside the file (imported) and steps (booted).
    pub connect: Option<&'a str>,
    /// How to reach registries, for parents that are neither in the file nor in the store.
    pub access: &'a RegistryAccess,
    /// Progress of those fetches.
    pub fetch_progress: Arc<dyn RegistryProgress>,
    /// `SOURCE_DATE_EPOCH`: the time of every file the build writes and of the images'
    /// creation, for reproducible images (`None`: now). Part of each image's cache key.
    pub source_date_epoch: Option<i64>,
    /// Show every program's output.
    pub verbose: bool,
    /// Compression threads of the export.
    pub threads: usize,
    /// Progress of the exports.
    pub progress: &'a dyn Progress,
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was built.
    Built,
    /// The cache had it.
    Cached,
    /// A dry run: it would be built, for this reason.
    WouldBuild(String),
}

/// One image's result.
#[derive(Debug, Clone)]
pub struct ImageReport {
    /// Its name in the build file.
    pub name: String,
    /// Its reference in the local store.
    pub reference: String,
    /// Built, reused, or (dry run) would be built.
    pub outcome: Outcome,
    /// Its image ID (the config digest) in the store; `None` in a dry run.
    pub id: Option<String>,
    /// How long it took.
    pub duration: Duration,
}

/// A finished image (of this build, or a parent from the store), for its children.
struct Built {
    /// The directory with its files.
    entry: PathBuf,
    /// Its content digest.
    content: String,
    /// The file name of its (top) disk.
    disk: String,
    /// The users its VM config lists.
    users: Vec<UserSpec>,
    /// Its domain definition (plain file names), for children of a parent from the store;
    /// children of the file's own images get a definition from their own `vm` settings.
    template: Option<String>,
}

/// Builds the images of `file`.
pub fn build(file: &BuildFile, options: &BuildOptions<'_>) -> Result<Vec<ImageReport>, BuildError> {
    let order = crate::plan::order(file, options.images)?;
    let cache = Cache::new(options.cache_dir);
    let mut built: HashMap<String, Option<Built>> = HashMap::new();
    let mut reports = Vec::new();
    for at in order {
        let image = &file.images[at];
        let started = Instant::now();
        let external;
        let parent = match &image.origin {
            Origin::Debian(_) => None,
            Origin::Parent(name) if file.image(name).is_some() => {
                Some(built.get(name).and_then(Option::as_ref))
            }
            Origin::Parent(name) => {
                external = store_parent(image, name, options)?;
                Some(external.as_ref())
            }
        };
        let reference = reference_of(file, image, options)?;
        let parent_content = match parent {
            Some(Some(parent)) => Some(parent.content.clone()),
            // A dry run: the parent would be rebuilt, and so would this image.
            Some(None) => {
                reports.push(ImageReport {
                    name: image.name.clone(),
                    reference: reference.to_string(),
                    outcome: Outcome::WouldBuild(
                        "its parent is not there yet (it would be built or fetched)".into(),
                    ),
                    id: None,
                    duration: started.elapsed(),
                });
                built.insert(image.name.clone(), None);
                continue;
            }
            None => None,
        };
        let key = cache::key(image, parent_content.as_deref(), options.source_date_epoch)?;
        let entry = cache.entry(&image.name, &key);
        let cached = cache.content(&entry).filter(|_| !options.force_rebuild);
        if options.dry_run {
            let outcome = match &cached {
                Some(_) => Outcome::Cached,
                None => Outcome::WouldBuild(reason(&cache, image, &entry, options)),
            };
            let done = cached.map(|content| Built {
                entry: entry.clone(),
                content,
                disk: disk_name(&image.name),
                users: Vec::new(),
                template: None,
            });
            built.insert(image.name.clone(), done);
            reports.push(ImageReport {
                name: image.name.clone(),
                reference: reference.to_string(),
                outcome,
                id: None,
                duration: started.elapsed(),
            });
            continue;
        }
        if cached.is_none() {
            // Before the lock, which root's cache directory would refuse with a less useful error.
            require_root(image)?;
        }
        let _lock = sardine_vm::lock::lock_exclusive(&cache.lock_path(&image.name))
            .map_err(BuildError::io("locking", cache.lock_path(&image.name)))?;
        // Another build may have made it while we waited.
        let cached = cache.content(&entry).filter(|_| !options.force_rebuild);
        let (outcome, content) = match cached {
            Some(content) => {
                tracing::info!(
                    "image {}: up to date in the cache ({})",
                    image.name,
                    short(&key)
                );
                (Outcome::Cached, content)
            }
            None => {
                let why = reason(&cache, image, &entry, options);
                tracing::info!("image {}: building ({why})", image.name);
                let parent = parent.flatten();
                let content = build_image(&cache, image, parent, &entry, options)?;
                (Outcome::Built, content)
            }
        };
        let id = export(image, &entry, &reference, options)?;
        built.insert(
            image.name.clone(),
            Some(Built {
                users: read_users(&entry)?,
                entry,
                content,
                disk: disk_name(&image.name),
                template: None,
            }),
        );
        tracing::info!(
            "image {}: {reference} ready in {:.1?}",
            image.name,
            started.elapsed()
        );
        reports.push(ImageReport {
            name: image.name.clone(),
            reference: reference.to_string(),
            outcome,
            id: Some(id),
            duration: started.elapsed(),
        });
    }
    Ok(reports)
}

/// Why an image that the cache does not have must be built.
fn reason(cache: &Cache, image: &ImageSpec, entry: &Path, options: &BuildOptions<'_>) -> String {
    if options.force_rebuild && cache.content(entry).is_some() {
        "--force-rebuild".into()
    } else if cache.has_other_entries(&image.name, entry) {
        "its definition, its files or its parent changed".into()
    } else {
        "not built before".into()
    }
}

fn short(key: &str) -> &str {
    &key[..12.min(key.len())]
}

/// A parent that is not an image of the file: an image of the local store (fetched from its
/// registry when missing), whose files come from its base VM (imported under the cache's
/// `parents/` unless it exists already). Its image ID stands for its content. In a dry run
/// nothing is fetched or imported (`None`: it would be fetched).
fn store_parent(
    image: &ImageSpec,
    parent: &str,
    options: &BuildOptions<'_>,
) -> Result<Option<Built>, BuildError> {
    let missing = |source: sardine_vm::ImageError| BuildError::MissingParent {
        image: image.name.clone(),
        parent: parent.to_owned(),
        source: Box::new(source),
    };
    let reference = Reference::parse(parent).map_err(|e| {
        missing(sardine_vm::ImageError::Unsupported {
            what: e.to_string(),
        })
    })?;
    if LocalImage::open(options.store, &reference).is_err() {
        if options.dry_run {
            return Ok(None);
        }
        fetch_parent(&reference, options).map_err(missing)?;
    }
    let local = LocalImage::open(options.store, &reference).map_err(missing)?;
    let domain = local.domain_xml()?;
    let users = local
        .vmconfig()?
        .map(|config| {
            config
                .users
                .iter()
                .map(|u| UserSpec {
                    name: u.username.clone(),
                    password: Some(u.password.clone()),
                    ssh_keys: Vec::new(),
                    sudo: false,
                })
                .collect()
        })
        .unwrap_or_default();
    let disk = DomainXml::parse(&domain)
        .map_err(|e| {
            missing(sardine_vm::ImageError::Malformed {
                what: e.to_string(),
            })
        })?
        .disks()
        .into_iter()
        .find_map(|d| d.source)
        .ok_or_else(|| {
            missing(sardine_vm::ImageError::Malformed {
                what: "its domain has no disk".into(),
            })
        })?;
    let entry = if options.dry_run {
        PathBuf::new()
    } else {
        let vmdir = options.cache_dir.join("parents");
        fs_err::create_dir_all(&vmdir).map_err(|e| BuildError::Io {
            what: "creating",
            path: vmdir.clone(),
            source: e,
        })?;
        sardine_vm::import::import(&ImportOptions {
            store: options.store,
            reference: &reference,
            name: None,
            vmdir: &vmdir,
            connect: options.connect,
            allow_unsafe_xml: false,
            threads: options.threads,
            auto_prune: None,
            max_disk_size: sardine_vm::import::DEFAULT_MAX_DISK_SIZE,
            progress: options.progress,
        })?
        .dir
    };
    Ok(Some(Built {
        entry,
        content: local.id().to_string(),
        disk,
        users,
        template: Some(domain),
    }))
}

/// Fetches a parent image into the store (as `sarde fetch` would).
fn fetch_parent(
    reference: &Reference,
    options: &BuildOptions<'_>,
) -> Result<(), sardine_vm::ImageError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(sardine_vm::ImageError::from)?;
    runtime.block_on(sardine_vm::run::ensure_image(
        options.store,
        reference,
        sardine_vm::run::PullPolicy::Missing,
        options.access,
        None,
        options.connect,
        options.fetch_progress.clone(),
    ))?;
    Ok(())
}

fn reference_of(
    file: &BuildFile,
    image: &ImageSpec,
    options: &BuildOptions<'_>,
) -> Result<Reference, BuildError> {
    let text = format!("{}{}:{}", options.prefix, image.name, options.tag);
    Reference::parse(&text).map_err(|e| BuildError::Invalid {
        file: file.path.clone(),
        image: image.name.clone(),
        what: format!("{text} is not a valid image reference: {e}"),
    })
}

/// The disk's file name of an image.
fn disk_name(image: &str) -> String {
    format!("{image}.qcow2")
}

/// Builds `image` into a staging directory and commits it as `entry`; returns its content
/// digest. Nothing is left behind when it fails.
fn build_image(
    cache: &Cache,
    image: &ImageSpec,
    parent: Option<&Built>,
    entry: &Path,
    options: &BuildOptions<'_>,
) -> Result<String, BuildError> {
    require_root(image)?;
    let staging = cache.staging(&image.name)?;
    let result = (|| {
        let users = match (&image.origin, parent) {
            (Origin::Debian(root), _) => build_root(image, root, &staging, options)?,
            (Origin::Parent(_), Some(parent)) => build_derived(image, parent, &staging, options)?,
            (Origin::Parent(name), None) => {
                unreachable!("parent {name} is built before its children")
            }
        };
        write_json(
            &staging.join("users.json"),
            &serde_json::to_value(&users).unwrap_or_default(),
        )?;
        write_json(&staging.join("vmconfig.json"), &output::vmconfig(&users))?;
        let content = cache::file_digest(&staging.join(disk_name(&image.name)))?;
        cache.commit(&staging, entry, &content)?;
        Ok(content)
    })();
    if result.is_err() {
        // Unmounting happened when the mount guard was dropped; what is left is plain files.
        let _ = cache::remove_dir(&staging);
    }
    result
}

/// Building without booting mounts file systems and chroots: only root can.
fn require_root(image: &ImageSpec) -> Result<(), BuildError> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BuildError::NeedsRoot {
            image: image.name.clone(),
        });
    }
    Ok(())
}

fn context<'a>(image: &'a ImageSpec, options: &BuildOptions<'_>) -> StepContext<'a> {
    StepContext {
        image: &image.name,
        verbose: options.verbose,
    }
}

/// A root image: mmdebstrap's tree, set up and changed in a chroot, then made a file system.
fn build_root(
    image: &ImageSpec,
    root: &DebianRoot,
    staging: &Path,
    options: &BuildOptions<'_>,
) -> Result<Vec<UserSpec>, BuildError> {
    let context = context(image, options);
    let tree = staging.join("tree");
    let mut mmdebstrap = Command::new("mmdebstrap");
    mmdebstrap.args(["--mode=root", "--format=directory"]);
    if let Some(variant) = &root.variant {
        mmdebstrap.arg(format!("--variant={variant}"));
    }
    let packages = root_packages(image, root);
    if !packages.is_empty() {
        mmdebstrap.arg(format!("--include={}", packages.join(",")));
    }
    mmdebstrap.arg(&root.suite).arg(&tree);
    if let Some(mirror) = &root.mirror {
        mmdebstrap.arg(mirror);
    }
    context.run("mmdebstrap", &mut mmdebstrap, None)?;
    let chroot = Chroot {
        dir: &tree,
        context,
    };
    if root.kernel.is_some() {
        let hostname = image
            .hostname
            .clone()
            .unwrap_or_else(|| hostname_of(&image.name));
        crate::actions::set_up_system(&chroot, &hostname)?;
    }
    let users = change(&chroot, image, Vec::new(), staging)?;
    let boot = output::extract_boot_files(&chroot, staging)?;
    let disk = staging.join(disk_name(&image.name));
    let uuid = uuid_of(&image.name);
    let epoch = options
        .source_date_epoch
        .and_then(|e| u64::try_from(e).ok());
    let size = image.size.unwrap_or(DEFAULT_ROOT_SIZE);
    if let Some(epoch) = epoch {
        clamp_times(context, &tree, epoch)?;
    }
    disk::make_root_disk(context, &tree, size, &uuid, epoch, &disk)?;
    cache::remove_dir(&tree)?;
    write_domain(image, staging, boot)?;
    Ok(users)
}

/// Sets every time in `tree` later than `epoch` to `epoch` (what the setup and the actions wrote
/// after mmdebstrap, which clamps its own), without following symbolic links.
fn clamp_times(context: StepContext<'_>, tree: &Path, epoch: u64) -> Result<(), BuildError> {
    let stamp = format!("@{epoch}");
    let mut find = Command::new("find");
    find.arg(tree).args([
        "-xdev",
        "-newermt",
        &stamp,
        "-exec",
        "touch",
        "--no-dereference",
        "--date",
        &stamp,
        "{}",
        "+",
    ]);
    context.run("clamping times to SOURCE_DATE_EPOCH", &mut find, None)
}

/// The packages mmdebstrap installs: the kernel and what a booting system needs, the file's,
/// and sudo for users who may use it.
fn root_packages(image: &ImageSpec, root: &DebianRoot) -> Vec<String> {
    let mut packages = Vec::new();
    if let Some(kernel) = &root.kernel {
        packages.extend([
            kernel.clone(),
            "systemd-sysv".into(),
            "udev".into(),
            "dbus".into(),
        ]);
    }
    packages.extend(image.packages.iter().cloned());
    if image.users.iter().any(|u| u.sudo) {
        packages.push("sudo".into());
    }
    packages
}

/// A host name made of the image's name (letters, digits and `-`, up to its first `.`).
pub(crate) fn hostname_of(name: &str) -> String {
    let stem = name.split('.').next().unwrap_or(name);
    stem.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A file system UUID that is the same for every build of the image (for reproducible disks).
fn uuid_of(name: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(format!("sardine-build:{name}"));
    let h = hex::encode(&hash[..16]);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A derived image: an overlay on the parent's disk, mounted and changed in a chroot, then
/// booted for its steps.
fn build_derived(
    image: &ImageSpec,
    parent: &Built,
    staging: &Path,
    options: &BuildOptions<'_>,
) -> Result<Vec<UserSpec>, BuildError> {
    let context = context(image, options);
    link_parent_files(&parent.entry, staging)?;
    let disk = staging.join(disk_name(&image.name));
    disk::make_overlay(context, &disk, &parent.disk, image.size)?;
    let mut users = parent.users.clone();
    let mut boot = BootFiles {
        kernel: staging.join(output::KERNEL).exists(),
        initrd: staging.join(output::INITRD).exists(),
    };
    if image.changes_offline() {
        let work = staging.join("work");
        fs_err::create_dir_all(&work).map_err(|e| BuildError::Io {
            what: "creating",
            path: work.clone(),
            source: e,
        })?;
        let mounted = Mounted::mount(context, &disk, &work, image.size.is_some())?;
        let chroot = Chroot {
            dir: mounted.dir(),
            context,
        };
        if let Some(hostname) = &image.hostname {
            let action = Action::SetHostname {
                hostname: hostname.clone(),
            };
            crate::actions::apply(&chroot, "host name", &action, &work)?;
        }
        users = change(&chroot, image, users, &work)?;
        let found = output::extract_boot_files(&chroot, staging)?;
        if found.kernel {
            boot = found;
        }
        mounted.finish(context)?;
        cache::remove_dir(&work)?;
    }
    match &parent.template {
        Some(template) => write_derived_domain(image, staging, template)?,
        None => write_domain(image, staging, boot)?,
    }
    if !image.steps.is_empty() {
        let login = login_of(image, &users)?;
        crate::steps::run_steps(context, image, staging, login, options.connect)?;
    }
    Ok(users)
}

/// How steps log in: as the first user with a password.
fn login_of(image: &ImageSpec, users: &[UserSpec]) -> Result<sardine_ssh::Login, BuildError> {
    let user = users
        .iter()
        .find(|u| u.password.is_some())
        .ok_or_else(|| BuildError::Step {
            image: image.name.clone(),
            step: "steps".into(),
            what: "no user with a password to log in as (give the image or its parent `users`)"
                .into(),
            output: String::new(),
        })?;
    Ok(sardine_ssh::Login {
        user: Some(user.name.clone()),
        password: user.password.clone(),
        port: None,
        identities: Vec::new(),
    })
}

/// The domain of an image derived from a parent of the store: the parent's, with its first
/// disk on the overlay and the image's name.
fn write_derived_domain(
    image: &ImageSpec,
    staging: &Path,
    template: &str,
) -> Result<(), BuildError> {
    let invalid = |e: &dyn std::fmt::Display| BuildError::Step {
        image: image.name.clone(),
        step: "domain definition".into(),
        what: e.to_string(),
        output: String::new(),
    };
    let mut domain = DomainXml::parse(template).map_err(|e| invalid(&e))?;
    domain.set_name(&image.name);
    if let Some(first) = domain.disks().into_iter().find(|d| d.source.is_some()) {
        domain.set_disk_source(first.index, &disk_name(&image.name));
        domain.set_disk_driver_type(first.index, "qcow2");
    }
    let xml = domain.to_xml().map_err(|e| invalid(&e))?;
    let path = staging.join("domain.xml");
    fs_err::write(&path, xml).map_err(|e| BuildError::Io {
        what: "writing",
        path,
        source: e,
    })
}

/// Adds the image's users and runs its actions; returns the users the image has for logins.
fn change(
    chroot: &Chroot<'_>,
    image: &ImageSpec,
    mut users: Vec<UserSpec>,
    work: &Path,
) -> Result<Vec<UserSpec>, BuildError> {
    crate::actions::add_users(chroot, &image.users)?;
    users.extend(image.users.iter().cloned());
    for (n, action) in image.actions.iter().enumerate() {
        let step = format!("action {} ({})", n + 1, action.kind());
        crate::actions::apply(chroot, &step, action, work)?;
        if let Action::Password { user, password } = action {
            match users.iter_mut().find(|u| &u.name == user) {
                Some(known) => known.password = Some(password.clone()),
                None => users.push(UserSpec {
                    name: user.clone(),
                    password: Some(password.clone()),
                    ssh_keys: Vec::new(),
                    sudo: false,
                }),
            }
        }
    }
    Ok(users)
}

/// The files of a cache entry that are not files of the image.
const ENTRY_METADATA: [&str; 6] = [
    "content",
    "domain.xml",
    "vmconfig.json",
    "users.json",
    "exported.json",
    "exported.json.tmp",
];

/// Hard links the parent's files (its disk chain, boot files) into `staging`: the overlay refers
/// to the parent's disk by name. Across file systems (a base VM elsewhere), they are copied,
/// keeping holes.
fn link_parent_files(parent: &Path, staging: &Path) -> Result<(), BuildError> {
    let listing = fs_err::read_dir(parent).map_err(|e| BuildError::Io {
        what: "listing",
        path: parent.to_path_buf(),
        source: e,
    })?;
    for entry in listing.filter_map(Result::ok) {
        let name = entry.file_name();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file || ENTRY_METADATA.iter().any(|m| name == *m) {
            continue;
        }
        let target = staging.join(&name);
        if std::fs::hard_link(entry.path(), &target).is_ok() {
            continue;
        }
        let status = Command::new("cp")
            .args(["--sparse=always", "--reflink=auto", "--"])
            .arg(entry.path())
            .arg(&target)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            return Err(BuildError::Io {
                what: "copying the parent's file to",
                path: target,
                source: std::io::Error::other("cp failed"),
            });
        }
    }
    Ok(())
}

fn write_domain(image: &ImageSpec, staging: &Path, boot: BootFiles) -> Result<(), BuildError> {
    let xml = output::domain_xml(&image.name, &disk_name(&image.name), boot, &image.vm);
    let path = staging.join("domain.xml");
    fs_err::write(&path, xml).map_err(|e| BuildError::Io {
        what: "writing",
        path,
        source: e,
    })
}

/// Writes a JSON file atomically (a new file renamed over the old one: a cache entry's files
/// may be hard links shared with copies of the cache).
fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), BuildError> {
    let text = serde_json::to_vec_pretty(value).unwrap_or_default();
    let temp = path.with_extension("json.tmp");
    fs_err::write(&temp, text)
        .and_then(|()| fs_err::rename(&temp, path))
        .map_err(|e| BuildError::Io {
            what: "writing",
            path: path.to_path_buf(),
            source: e,
        })
}

fn read_users(entry: &Path) -> Result<Vec<UserSpec>, BuildError> {
    let path = entry.join("users.json");
    let text = fs_err::read(&path).map_err(|e| BuildError::Io {
        what: "reading",
        path: path.clone(),
        source: e,
    })?;
    serde_json::from_slice(&text).map_err(|e| BuildError::Io {
        what: "parsing",
        path,
        source: std::io::Error::other(e),
    })
}

/// Exports the entry into the store unless the store's image under `reference` is already
/// this entry's export; returns the image ID.
fn export(
    image: &ImageSpec,
    entry: &Path,
    reference: &Reference,
    options: &BuildOptions<'_>,
) -> Result<String, BuildError> {
    let record = entry.join("exported.json");
    let store_path = std::path::absolute(options.store.root()).unwrap_or_default();
    let wanted = serde_json::json!({"store": store_path, "reference": reference.to_string()});
    if let Ok(text) = fs_err::read(&record)
        && let Ok(seen) = serde_json::from_slice::<serde_json::Value>(&text)
        && seen.get("store") == wanted.get("store")
        && seen.get("reference") == wanted.get("reference")
        && let Ok(local) = LocalImage::open(options.store, reference)
        && seen.get("id").and_then(|v| v.as_str()) == Some(local.id().hex())
    {
        return Ok(local.id().hex().to_owned());
    }
    let report = sardine_vm::export::export(&ExportOptions {
        vm: &image.name,
        reference,
        store: options.store,
        connect: None,
        domain_xml_file: Some(&entry.join("domain.xml")),
        vmconfig_file: Some(&entry.join("vmconfig.json")),
        disk_format: DiskFormat::Chunked { chunk_size: None },
        force: false,
        threads: options.threads,
        created: options.source_date_epoch,
        progress: options.progress,
    })?;
    let id = report.config_digest.hex().to_owned();
    let mut seen = wanted;
    seen["id"] = serde_json::Value::String(id.clone());
    write_json(&record, &seen)?;
    Ok(id)
}
