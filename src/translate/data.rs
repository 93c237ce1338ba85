//! The translator data compiled into the binary: field tables, defaults and templates from
//! `translators/`. Parsed once on first use.

use super::defaults::Defaults;
use super::framework::Framework;
use super::table::Table;
use std::sync::OnceLock;

macro_rules! translator_file {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/translators/", $path))
    };
}

/// The built-in field table of a framework.
pub fn table(fw: Framework) -> &'static Table {
    static AX: OnceLock<Table> = OnceLock::new();
    static TT: OnceLock<Table> = OnceLock::new();
    static US: OnceLock<Table> = OnceLock::new();
    match fw {
        Framework::Axolotl => AX.get_or_init(|| {
            Table::parse(
                translator_file!("axolotl/fields.toml"),
                "axolotl/fields.toml",
            )
        }),
        Framework::Torchtune => TT.get_or_init(|| {
            Table::parse(
                translator_file!("torchtune/fields.toml"),
                "torchtune/fields.toml",
            )
        }),
        Framework::Unsloth => US.get_or_init(|| {
            Table::parse(
                translator_file!("unsloth/fields.toml"),
                "unsloth/fields.toml",
            )
        }),
        Framework::Ir => panic!("the IR has no field table"),
    }
}

/// The built-in defaults of a framework.
pub fn defaults(fw: Framework) -> &'static Defaults {
    static AX: OnceLock<Defaults> = OnceLock::new();
    static TT: OnceLock<Defaults> = OnceLock::new();
    static US: OnceLock<Defaults> = OnceLock::new();
    match fw {
        Framework::Axolotl => AX.get_or_init(|| {
            Defaults::parse(
                translator_file!("axolotl/defaults.toml"),
                "axolotl/defaults.toml",
            )
        }),
        Framework::Torchtune => TT.get_or_init(|| {
            Defaults::parse(
                translator_file!("torchtune/defaults.toml"),
                "torchtune/defaults.toml",
            )
        }),
        Framework::Unsloth => US.get_or_init(|| {
            Defaults::parse(
                translator_file!("unsloth/defaults.toml"),
                "unsloth/defaults.toml",
            )
        }),
        Framework::Ir => panic!("the IR has no defaults"),
    }
}

/// A template file of a framework (`template.yaml.j2`, `script.py.j2`).
pub fn template(fw: Framework) -> &'static str {
    match fw {
        Framework::Axolotl => translator_file!("axolotl/template.yaml.j2"),
        Framework::Torchtune => translator_file!("torchtune/template.yaml.j2"),
        Framework::Unsloth => translator_file!("unsloth/script.py.j2"),
        Framework::Ir => "",
    }
}

/// Model families: `translators/families.toml`.
pub fn families_text() -> &'static str {
    translator_file!("families.toml")
}

/// Prompt formats with their exact strings: `translators/prompts.toml`.
pub fn prompts_text() -> &'static str {
    translator_file!("prompts.toml")
}
