//! `sarde inventory`: vm-provisioner-libvirt's `config`, `list` and `image-url` over its
//! registry format ([`sardine_inventory`]), printing what vmp prints (YAML for `config`).

use std::io::Write as _;

use sardine_inventory::{InventoryError, load, resolve};

use crate::cli::{InventoryArgs, InventoryCommand};
use crate::exit_code;

/// `sarde inventory`.
pub fn inventory(args: &InventoryArgs) -> anyhow::Result<()> {
    let registry = load::load(args.registry.as_deref()).map_err(failure)?;
    let mut stdout = std::io::stdout().lock();
    match &args.command {
        InventoryCommand::Config { name } => {
            let config = resolve::config(&registry, name).map_err(failure)?;
            write!(stdout, "{}", yaml_serde::to_string(&config)?)?;
        }
        InventoryCommand::List => {
            for name in resolve::list(&registry) {
                writeln!(stdout, "{name}")?;
            }
        }
        InventoryCommand::ImageUrl { image } => {
            let image = resolve::image(&registry, image).map_err(failure)?;
            writeln!(stdout, "{}", image.url)?;
        }
    }
    Ok(())
}

/// An inventory error with its exit status and hint.
fn failure(error: InventoryError) -> anyhow::Error {
    let code = match &error {
        InventoryError::NotFound { .. } | InventoryError::NoTag { .. } => exit_code::NOT_FOUND,
        InventoryError::Read { .. } => exit_code::GENERAL,
        _ => exit_code::USAGE,
    };
    let hint = error.hint().map(str::to_owned);
    exit_code::failure(code, error, hint)
}
