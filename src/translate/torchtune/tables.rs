//! The TorchTune data tables: `translators/torchtune/builders.toml` (model builders, generated
//! from torchtune 0.6.1) and `components.toml` (tokenizers, optimizers, schedulers, losses,
//! loggers, datasets, recipes, output layout). Parsed once; lookups only, no behaviour.

use crate::ir::{DatasetFormat, LossKind, Method, ScheduleKind, Tracker};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;

const BUILDERS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/translators/torchtune/builders.toml"
));
const COMPONENTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/translators/torchtune/components.toml"
));

/// One sized model builder (`torchtune.models.llama3_2.lora_llama3_2_1b`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Builder {
    pub name: String,
    pub module: String,
    /// `full`, `lora` or `qlora`.
    pub method: Method,
    /// Parameter-count tag as Hugging Face names carry it (`1B`, `0.5B`), empty if none.
    pub size: String,
    /// `base` / `instruct` for the Qwen2.5 builders that come in both.
    #[serde(default)]
    pub variant: String,
    pub max_seq_len: u64,
    pub tied: bool,
    #[serde(default)]
    pub output_lora: bool,
    #[serde(default)]
    pub dora: bool,
    #[serde(default)]
    pub checkpoint_files: Option<Value>,
}

impl Builder {
    pub fn path(&self) -> String {
        format!("torchtune.models.{}.{}", self.module, self.name)
    }
}

/// A size-free builder taking the architecture as keywords (`lora_qwen2`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub module: String,
    pub method: Method,
    pub args: Vec<String>,
    #[serde(default)]
    pub defaults: IndexMap<String, Value>,
    #[serde(default)]
    pub output_lora: bool,
    #[serde(default)]
    pub dora: bool,
}

impl Component {
    pub fn path(&self) -> String {
        format!("torchtune.models.{}.{}", self.module, self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildersFile {
    component: Vec<Component>,
    builder: Vec<Builder>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub methods: Vec<Method>,
    pub distributed: bool,
    pub lr_scheduler_required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokenizer {
    pub component: String,
    pub modules: Vec<String>,
    pub files: IndexMap<String, String>,
    pub framing: String,
    #[serde(default)]
    pub prompt_template: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    pub component: String,
    pub chat_template: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpointer {
    pub component: String,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub strip_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    pub component: String,
    pub name: String,
    #[serde(default)]
    pub fused_name: String,
    pub args: Vec<String>,
    pub defaults: IndexMap<String, Value>,
    #[serde(default = "yes")]
    pub write: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduler {
    pub component: String,
    pub kind: ScheduleKind,
    #[serde(default)]
    pub defaults: IndexMap<String, Value>,
    #[serde(default)]
    pub requires: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    pub component: String,
    pub kind: LossKind,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricLogger {
    pub component: String,
    pub tracker: Tracker,
    #[serde(default)]
    pub project: String,
    #[serde(default = "yes")]
    pub write: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub component: String,
    pub format: DatasetFormat,
    #[serde(default)]
    pub prompt_style: String,
    #[serde(default)]
    pub source: String,
    pub train_on_input: bool,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub column: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub conversation_column: String,
    #[serde(default)]
    pub conversation_style: String,
    /// A builder that fixes its data (source, column, …); read only.
    #[serde(default)]
    pub preset: bool,
    #[serde(default)]
    pub note: String,
}

impl Dataset {
    pub fn short(&self) -> &str {
        self.component.rsplit('.').next().unwrap_or(&self.component)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsupportedComponent {
    pub prefix: String,
    pub feature: String,
}

/// How a module's builders relate to another module's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    pub name: String,
    #[serde(default)]
    pub size_free: String,
    #[serde(default)]
    pub stand_in: String,
    #[serde(default)]
    pub note: String,
}

/// A heading of the written config and the top-level keys under it, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub title: String,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Components {
    pub recipe: Vec<Recipe>,
    pub tokenizer: Vec<Tokenizer>,
    pub prompt_template: Vec<PromptTemplate>,
    pub checkpointer: Vec<Checkpointer>,
    pub optimizer: Vec<Optimizer>,
    pub lr_scheduler: Vec<Scheduler>,
    pub loss: Vec<Loss>,
    pub metric_logger: Vec<MetricLogger>,
    pub dataset: Vec<Dataset>,
    pub unsupported_component: Vec<UnsupportedComponent>,
    pub module: Vec<Module>,
    pub hf_config: IndexMap<String, Vec<String>>,
    pub section: Vec<Section>,
}

fn yes() -> bool {
    true
}

pub struct Tables {
    pub builders: Vec<Builder>,
    pub components: Vec<Component>,
    pub c: Components,
}

pub fn get() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let b: BuildersFile = toml::from_str(BUILDERS)
            .unwrap_or_else(|e| panic!("built-in translators/torchtune/builders.toml: {e}"));
        let c: Components = toml::from_str(COMPONENTS)
            .unwrap_or_else(|e| panic!("built-in translators/torchtune/components.toml: {e}"));
        Tables {
            builders: b.builder,
            components: b.component,
            c,
        }
    })
}

/// `torchtune.models.qwen2._model_builders.lora_qwen2_0_5b` → (`qwen2`, `lora_qwen2_0_5b`).
pub fn split_model_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("torchtune.models.")?;
    let mut parts = rest.split('.');
    let module = parts.next()?;
    let name = rest.rsplit('.').next()?;
    (name != module || rest.contains('.')).then_some((module, name))
}

impl Tables {
    pub fn builder(&self, path: &str) -> Option<&Builder> {
        let (module, name) = split_model_path(path)?;
        self.builders
            .iter()
            .find(|b| b.module == module && b.name == name)
    }

    pub fn component(&self, path: &str) -> Option<&Component> {
        let (module, name) = split_model_path(path)?;
        self.components
            .iter()
            .find(|c| c.module == module && c.name == name)
    }

    /// Every builder name of a module, for suggestions.
    pub fn builder_names(&self, module: &str) -> Vec<String> {
        self.builders
            .iter()
            .filter(|b| b.module == module)
            .map(|b| b.name.clone())
            .chain(
                self.components
                    .iter()
                    .filter(|c| c.module == module)
                    .map(|c| c.name.clone()),
            )
            .collect()
    }

    /// The IR family a TorchTune reader gives a module's builders.
    pub fn family_of_module(&self, module: &str) -> String {
        crate::translate::families::by_name(module).map_or(module.to_string(), |f| f.name.clone())
    }

    pub fn has_module(&self, module: &str) -> bool {
        self.builders.iter().any(|b| b.module == module)
    }

    /// The sized builder for a module, method and size; `instruct` picks the instruct variant
    /// where a size has both.
    pub fn sized(
        &self,
        module: &str,
        method: Method,
        size: &str,
        instruct: bool,
    ) -> Option<&Builder> {
        let matching: Vec<&Builder> = self
            .builders
            .iter()
            .filter(|b| {
                b.module == module && b.method == method && b.size.eq_ignore_ascii_case(size)
            })
            .collect();
        let want = if instruct { "instruct" } else { "base" };
        matching
            .iter()
            .find(|b| b.variant == want)
            .or_else(|| matching.iter().find(|b| b.variant.is_empty()))
            .or_else(|| matching.first())
            .copied()
    }

    /// The only sized builder of a module for a method, when the module has exactly one size.
    pub fn only_size(&self, module: &str, method: Method) -> Option<&Builder> {
        let mut it = self
            .builders
            .iter()
            .filter(|b| b.module == module && b.method == method);
        let first = it.next()?;
        it.all(|b| b.size == first.size).then_some(first)
    }

    pub fn size_free(&self, module: &str, method: Method) -> Option<&Component> {
        let method = match method {
            Method::Qlora => Method::Lora,
            Method::Lora | Method::Full => method,
        };
        let module = self
            .c
            .module
            .iter()
            .find(|m| m.name == module && !m.size_free.is_empty())
            .map_or(module, |m| m.size_free.as_str());
        self.components
            .iter()
            .find(|c| c.module == module && c.method == method)
    }

    /// The module a family without 0.6.1 builders is written as, with why.
    pub fn stand_in(&self, module: &str) -> Option<&Module> {
        self.c
            .module
            .iter()
            .find(|m| m.name == module && !m.stand_in.is_empty())
    }

    pub fn tokenizer_for_module(&self, module: &str) -> Option<&Tokenizer> {
        self.c
            .tokenizer
            .iter()
            .find(|t| t.modules.iter().any(|m| m == module))
    }

    pub fn tokenizer(&self, component: &str) -> Option<&Tokenizer> {
        self.c.tokenizer.iter().find(|t| t.component == component)
    }

    pub fn recipe(&self, method: Method, distributed: bool) -> &Recipe {
        self.c
            .recipe
            .iter()
            .find(|r| r.methods.contains(&method) && r.distributed == distributed)
            .unwrap_or(&self.c.recipe[0])
    }

    pub fn dataset(&self, component: &str) -> Option<&Dataset> {
        self.c.dataset.iter().find(|d| d.component == component)
    }

    pub fn unsupported(&self, component: &str) -> Option<&UnsupportedComponent> {
        self.c
            .unsupported_component
            .iter()
            .find(|u| component.starts_with(&u.prefix))
    }
}

#[cfg(test)]
mod tests {
    use crate::translate::torchtune::tables::*;

    #[test]
    fn tables_parse_and_cover_every_shipped_family() {
        let t = get();
        for module in [
            "llama2",
            "code_llama2",
            "llama3",
            "llama3_1",
            "llama3_2",
            "llama3_3",
            "mistral",
            "gemma",
            "gemma2",
            "phi3",
            "phi4",
            "qwen2",
            "qwen2_5",
        ] {
            assert!(t.has_module(module), "{module}");
            assert!(t.tokenizer_for_module(module).is_some(), "{module}");
            assert!(t.size_free(module, Method::Lora).is_some(), "{module}");
            assert!(t.size_free(module, Method::Full).is_some(), "{module}");
        }
        let b = t
            .builder("torchtune.models.llama3_2.lora_llama3_2_1b")
            .unwrap();
        assert_eq!(
            (b.size.as_str(), b.method, b.tied),
            ("1B", Method::Lora, true)
        );
        assert!(!b.output_lora);
        assert_eq!(b.max_seq_len, 131072);
        let q = t.builder("torchtune.models.qwen2_5._model_builders.qlora_qwen2_5_0_5b");
        assert!(q.is_none(), "Qwen2.5 has no QLoRA builders in 0.6.1");
        assert_eq!(
            t.sized("qwen2_5", Method::Lora, "1.5B", true).unwrap().name,
            "lora_qwen2_5_1_5b_instruct"
        );
        assert_eq!(
            t.sized("qwen2_5", Method::Lora, "1.5B", false)
                .unwrap()
                .name,
            "lora_qwen2_5_1_5b_base"
        );
        assert_eq!(
            t.only_size("phi3", Method::Qlora).unwrap().name,
            "qlora_phi3_mini"
        );
        assert!(t.only_size("llama3_2", Method::Lora).is_none());
    }

    #[test]
    fn model_paths_split_into_module_and_builder() {
        assert_eq!(
            split_model_path("torchtune.models.qwen2.lora_qwen2"),
            Some(("qwen2", "lora_qwen2"))
        );
        assert_eq!(
            split_model_path("torchtune.models.qwen2._component_builders.lora_qwen2"),
            Some(("qwen2", "lora_qwen2"))
        );
        assert_eq!(split_model_path("torch.optim.AdamW"), None);
    }
}
