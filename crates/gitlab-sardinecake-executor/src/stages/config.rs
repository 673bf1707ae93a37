//! `config`: the JSON that tells gitlab-runner where builds and caches live in the guest, and
//! which driver it runs.
//!
//! Only keys with a value are printed; `builds_dir_is_shared` is always false, since every job
//! has a VM of its own. The libvirt and hypervisor versions are added when libvirt answers.

use serde_json::{Map, Value, json};

use crate::exit::Outcome;
use crate::stages::StageContext;

/// The driver's name in the runner's log ("Using Custom executor with driver ...").
pub const DRIVER_NAME: &str = "gitlab-sardinecake-executor";

/// Prints the configuration JSON on stdout.
pub async fn config(ctx: &StageContext) -> anyhow::Result<Outcome> {
    let connect = ctx.settings.connect.clone();
    let versions = tokio::task::spawn_blocking(move || {
        sardine_vm::Libvirt::open_read_only(connect.as_deref())
            .and_then(|libvirt| libvirt.versions())
    })
    .await;
    let versions = match versions {
        Ok(Ok(versions)) => Some(versions),
        Ok(Err(e)) => {
            tracing::debug!("libvirt versions unknown: {e}");
            None
        }
        Err(e) => {
            tracing::debug!("libvirt versions unknown: {e}");
            None
        }
    };
    let hostname = ctx.job.vm_name().ok();
    println!("{}", config_json(ctx, versions, hostname));
    Ok(Outcome::Success)
}

/// The JSON object (compact, one line).
fn config_json(
    ctx: &StageContext,
    versions: Option<(String, String, String)>,
    hostname: Option<String>,
) -> Value {
    let mut version = env!("CARGO_PKG_VERSION").to_owned();
    if let Some((library, driver, hypervisor)) = versions {
        version.push_str(&format!(" (libvirt {library}, {driver} {hypervisor})"));
    }
    let mut object = Map::new();
    object.insert(
        "driver".into(),
        json!({"name": DRIVER_NAME, "version": version}),
    );
    if let Some(dir) = &ctx.settings.guest_builds_dir {
        object.insert("builds_dir".into(), json!(dir));
    }
    if let Some(dir) = &ctx.settings.guest_cache_dir {
        object.insert("cache_dir".into(), json!(dir));
    }
    object.insert("builds_dir_is_shared".into(), json!(false));
    if let Some(hostname) = hostname {
        object.insert("hostname".into(), json!(hostname));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SharedOptions;
    use crate::env::JobEnv;

    fn context(ini: &str) -> StageContext {
        let config = sardine_config::Config::parse_str(ini, "t.ini").unwrap();
        let settings = crate::settings::resolve(&SharedOptions::default(), &config, None).unwrap();
        StageContext {
            settings,
            job: JobEnv {
                job_id: Some("7".into()),
                ..JobEnv::default()
            },
        }
    }

    #[test]
    fn only_set_keys_appear() {
        let json = config_json(&context(""), None, None);
        assert_eq!(
            json.to_string(),
            format!(
                r#"{{"driver":{{"name":"gitlab-sardinecake-executor","version":"{}"}},"builds_dir_is_shared":false}}"#,
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn directories_versions_and_hostname() {
        let ctx = context("[DEFAULT]\nguest-builds-dir = /builds\nguest_cache_dir = /cache\n");
        let versions = Some(("9.0.0".to_owned(), "QEMU".to_owned(), "7.2.0".to_owned()));
        let json = config_json(&ctx, versions, ctx.job.vm_name().ok());
        assert_eq!(json["builds_dir"], "/builds");
        assert_eq!(json["cache_dir"], "/cache");
        assert_eq!(json["hostname"], "gitlab-7");
        assert_eq!(
            json["driver"]["version"],
            format!("{} (libvirt 9.0.0, QEMU 7.2.0)", env!("CARGO_PKG_VERSION"))
        );
    }
}
