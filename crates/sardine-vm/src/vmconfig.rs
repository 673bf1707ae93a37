//! The sardine VM config: what an image tells its users (credentials, services).
//!
//! Schema (as sardinecake 0.4.2's `sardineconfig.schema.json`, draft 2020-12): an object;
//! `users` an array of objects with string `username` and `password`; `services` an array
//! of objects with string `service`, integer `port` (1–65535) and `protocol` `tcp`|`udp`;
//! any other keys allowed. Validated here in code, so no schema file is looked up in the
//! current directory (W23).

use serde::Deserialize;
use serde_json::Value;

use crate::error::ImageError;

/// A checked sardine VM config: the typed parts sarde uses, and the document as it was (so
/// printing it loses no key an image author added).
#[derive(Debug, Clone, PartialEq)]
pub struct VmConfig {
    /// The users, first the one logins default to.
    pub users: Vec<User>,
    /// The services the guest offers.
    pub services: Vec<Service>,
    document: Value,
}

/// A user of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// sardinecake 0.4.2 read an SSH port here when no `ssh` service was given.
    #[serde(default)]
    port: Option<u64>,
}

/// A network service of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Service {
    /// Its name (`ssh`, `rdp`, ...).
    pub service: String,
    /// Its port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

impl VmConfig {
    /// Checks a sardine VM config from `origin` (a file or layer, for messages).
    pub fn parse(text: &[u8], origin: &str) -> Result<VmConfig, ImageError> {
        let document = validate(text, origin)?;
        let part = |key: &str| {
            document
                .get(key)
                .cloned()
                .unwrap_or(Value::Array(Vec::new()))
        };
        let typed = |key: &str| ImageError::VmConfig {
            origin: origin.to_owned(),
            what: format!("`{key}` does not match the schema"),
        };
        Ok(VmConfig {
            users: serde_json::from_value(part("users")).map_err(|_| typed("users"))?,
            services: serde_json::from_value(part("services")).map_err(|_| typed("services"))?,
            document,
        })
    }

    /// The document, as JSON.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The first user, whom logins default to.
    pub fn first_user(&self) -> Option<&User> {
        self.users.first()
    }

    /// The SSH port the image announces: its `ssh` service over TCP, or (as 0.4.2 read it)
    /// its first user's `port`.
    pub fn ssh_port(&self) -> Option<u16> {
        match self
            .services
            .iter()
            .find(|s| s.service == "ssh" && s.protocol == "tcp")
        {
            Some(service) => Some(service.port),
            None => self
                .first_user()?
                .port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0),
        }
    }

    /// What the image says about logging in: its first user and its SSH port.
    pub fn login(&self) -> sardine_ssh::Login {
        let user = self.first_user();
        sardine_ssh::Login {
            user: user.map(|u| u.username.clone()),
            password: user.map(|u| u.password.clone()),
            port: self.ssh_port(),
            identities: Vec::new(),
        }
    }
}

/// Checks a sardine VM config against the schema and returns it as JSON.
fn validate(text: &[u8], origin: &str) -> Result<Value, ImageError> {
    let fail = |what: String| ImageError::VmConfig {
        origin: origin.to_owned(),
        what,
    };
    let value: Value =
        serde_json::from_slice(text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| fail("must be a JSON object".into()))?;
    if let Some(users) = object.get("users") {
        let users = users
            .as_array()
            .ok_or_else(|| fail("`users` must be an array".into()))?;
        for (i, user) in users.iter().enumerate() {
            for key in ["username", "password"] {
                if !user.get(key).is_some_and(Value::is_string) {
                    return Err(fail(format!("users[{i}] needs a string `{key}`")));
                }
            }
        }
    }
    if let Some(services) = object.get("services") {
        let services = services
            .as_array()
            .ok_or_else(|| fail("`services` must be an array".into()))?;
        for (i, service) in services.iter().enumerate() {
            if !service.get("service").is_some_and(Value::is_string) {
                return Err(fail(format!("services[{i}] needs a string `service`")));
            }
            let port = service.get("port").and_then(Value::as_u64);
            if !port.is_some_and(|p| (1..=65535).contains(&p)) {
                return Err(fail(format!(
                    "services[{i}] needs an integer `port` from 1 to 65535"
                )));
            }
            let protocol = service.get("protocol").and_then(Value::as_str);
            if !matches!(protocol, Some("tcp" | "udp")) {
                return Err(fail(format!("services[{i}] needs `protocol` tcp or udp")));
            }
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_shape() {
        let config = br#"{"users":[{"username":"vagrant","password":"vagrant"}],
            "services":[{"service":"ssh","port":22,"protocol":"tcp"}],"extra":1}"#;
        let config = VmConfig::parse(config, "t").unwrap();
        let user = config.first_user().unwrap();
        assert_eq!(
            (user.username.as_str(), user.password.as_str()),
            ("vagrant", "vagrant")
        );
        assert_eq!(config.ssh_port(), Some(22));
        assert_eq!(config.document()["extra"], 1, "unknown keys are kept");
    }

    #[test]
    fn the_ssh_port_is_the_ssh_service_else_the_first_users_legacy_port() {
        let port = |json: &[u8]| VmConfig::parse(json, "t").unwrap().ssh_port();
        assert_eq!(
            port(
                br#"{"services":[{"service":"rdp","port":3389,"protocol":"tcp"},
                {"service":"ssh","port":2222,"protocol":"tcp"}]}"#
            ),
            Some(2222)
        );
        assert_eq!(
            port(br#"{"users":[{"username":"u","password":"p","port":2022}]}"#),
            Some(2022)
        );
        assert_eq!(port(br#"{}"#), None);
        let login = VmConfig::parse(br#"{"users":[{"username":"u","password":"p"}]}"#, "t")
            .unwrap()
            .login();
        assert_eq!((login.user.as_deref(), login.port), (Some("u"), None));
    }

    #[test]
    fn refuses_what_the_schema_forbids() {
        for bad in [
            &br#"[]"#[..],
            br#"{"users":{}}"#,
            br#"{"users":[{"username":"x"}]}"#,
            br#"{"services":[{"service":"ssh","port":0,"protocol":"tcp"}]}"#,
            br#"{"services":[{"service":"ssh","port":22,"protocol":"icmp"}]}"#,
            br#"{"services":[{"port":22,"protocol":"tcp"}]}"#,
            b"not json",
        ] {
            assert!(
                VmConfig::parse(bad, "t").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
