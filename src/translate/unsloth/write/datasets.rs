//! Writer section: the datasets, each with a formatting function in the notebooks' shape,
//! masking (`train_on_responses_only`) and batching.

use super::context::{Ctx, Ds, Func, Src};
use super::literals::{py, py_num, py_str};
use crate::ir::Dataset;
use crate::ir::DatasetFormat;
use crate::translate::emitter::Emitter;
use crate::translate::families;
use crate::translate::report::Status;
use crate::translate::unsloth::format::escape_braces;
use crate::translate::unsloth::script_data::script_data;
use serde_json::json;

/// The datasets with their formatting functions, masking, and batching.
pub(super) fn data(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let (markers, any_chat) = formatting_functions(em, ctx, s);
    split_and_text_field(em, ctx, s);
    masking(em, ctx, s, markers.as_ref());
    add_eos(em, ctx, s, any_chat);
    batching(em, s);
}

/// One loaded dataset per source dataset, each with its formatting function and
/// standardization; returns the first response markers found and whether any dataset is chat.
fn formatting_functions(
    em: &mut Emitter,
    ctx: &mut Ctx,
    s: &Src,
) -> (Option<(String, String)>, bool) {
    let spec = s.spec;
    let datasets = &spec.data.datasets;
    let n = datasets.len();
    let masked = !spec.data.train_on_inputs;
    let mut markers: Option<(String, String)> = None;
    let mut any_chat = false;
    for (i, d) in datasets.iter().enumerate() {
        let var = if n == 1 {
            "dataset".to_string()
        } else {
            format!("dataset_{i}")
        };
        let fname = if n == 1 {
            "formatting_prompts_func".to_string()
        } else {
            format!("formatting_prompts_func_{i}")
        };
        let (func, chat, m) = dataset_func(em, i, d, &fname, spec.data.add_eos, masked);
        any_chat |= chat;
        if markers.is_none() {
            markers = m;
        }
        ctx.needs_eos |= func.as_ref().is_some_and(|f| f.eos);
        let sharegpt = d.columns.get("role").is_some_and(|r| r == "from")
            && d.columns.get("content").is_none_or(|c| c == "value");
        let standardize = match (
            chat && func.as_ref().is_some_and(|f| f.kind == "chat"),
            sharegpt,
        ) {
            (true, true) => "standardize_sharegpt",
            (true, false) => "standardize_data_formats",
            _ => "",
        };
        ctx.datasets.push(Ds {
            load: load_expr(d),
            standardize: standardize.into(),
            var,
            remove_columns: n > 1 && func.is_some(),
            func,
        });
    }
    ctx.concat = n > 1;
    em.cover("data.datasets", Status::Carried, "load_dataset", "");
    (markers, any_chat)
}

/// The held-out split, the text field and the sequence length.
fn split_and_text_field(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let Src { spec, foreign, .. } = *s;
    let datasets = &spec.data.datasets;
    let n = datasets.len();
    if spec.data.val_size > 0.0 {
        ctx.split = format!(
            "dataset = dataset.train_test_split(test_size = {}, seed = {})",
            py_num(spec.data.val_size),
            spec.training.seed
        );
        em.cover(
            "data.val_size",
            if foreign {
                Status::Approximated
            } else {
                Status::Carried
            },
            "train_test_split",
            if foreign {
                "datasets' train_test_split picks other held-out rows than the source"
            } else {
                ""
            },
        );
    }
    // Text field: every formatting function returns "text"; plain text datasets name their column.
    let text_field = match datasets.first() {
        Some(d) if n == 1 && d.format == DatasetFormat::Completion && !spec.data.add_eos => d
            .columns
            .get("text")
            .cloned()
            .unwrap_or_else(|| "text".into()),
        _ => "text".into(),
    };
    em.put(
        "SFTConfig.dataset_text_field",
        json!(text_field),
        &[],
        Status::Carried,
        "",
    );
    em.put(
        "SFTConfig.max_seq_length",
        json!(spec.data.sequence_len),
        &[],
        Status::Carried,
        "",
    );
}

/// Prompt masking (`train_on_responses_only`) and its markers.
fn masking(em: &mut Emitter, ctx: &mut Ctx, s: &Src, markers: Option<&(String, String)>) {
    let spec = s.spec;
    let datasets = &spec.data.datasets;
    let masked = !spec.data.train_on_inputs;
    // Masking.
    if masked {
        let all_completion = datasets
            .iter()
            .all(|d| d.format == DatasetFormat::Completion);
        if all_completion {
            em.cover(
                "data.train_on_inputs",
                Status::NotExpressible,
                "",
                "a plain-text dataset has no prompt to mask; every token is trained",
            );
        } else {
            ctx.responses_only = true;
            em.cover(
                "data.train_on_inputs",
                Status::Carried,
                "train_on_responses_only",
                "",
            );
            if let Some((i, r)) = markers {
                ctx.responses_only_args = vec![
                    format!("instruction_part = {},", py_str(i)),
                    format!("response_part = {},", py_str(r)),
                ];
            } else {
                em.cover(
                    "data.datasets",
                    Status::Approximated,
                    "train_on_responses_only",
                    "markers are detected from the chat template at run time",
                );
            }
            if !spec.data.drop_fully_masked {
                em.cover(
                    "data.drop_fully_masked",
                    Status::Approximated,
                    "train_on_responses_only",
                    "train_on_responses_only drops rows whose labels are all masked",
                );
            } else {
                em.cover(
                    "data.drop_fully_masked",
                    Status::Carried,
                    "train_on_responses_only",
                    "",
                );
            }
            for (i, d) in datasets.iter().enumerate() {
                let written = markers.map(|(a, b)| (a.as_str(), b.as_str()));
                let given = (
                    d.response_markers.get("instruction").map(String::as_str),
                    d.response_markers.get("response").map(String::as_str),
                );
                let same = written.is_some_and(|(a, b)| given == (Some(a), Some(b)));
                if !same {
                    em.cover(
                        &format!("data.datasets.{i}.response_markers"),
                        Status::Approximated,
                        "train_on_responses_only",
                        "Unsloth masks by marker strings; the source masked by turn or by prompt",
                    );
                }
                if d.roles_to_train.iter().any(|r| r != "assistant") {
                    em.cover(
                        &format!("data.datasets.{i}.roles_to_train"),
                        Status::NotExpressible,
                        "",
                        "train_on_responses_only trains the assistant turns only",
                    );
                }
            }
        }
    } else {
        em.cover("data.train_on_inputs", Status::Carried, "", "");
        if spec.data.drop_fully_masked {
            em.cover(
                "data.drop_fully_masked",
                Status::NotExpressible,
                "",
                "only train_on_responses_only drops fully-masked rows",
            );
        }
        for (i, d) in datasets.iter().enumerate() {
            if !d.response_markers.is_empty() {
                em.cover(
                    &format!("data.datasets.{i}.response_markers"),
                    Status::NotExpressible,
                    "",
                    "markers only matter when prompts are masked",
                );
            }
        }
    }
}

/// Whether EOS is appended, given the formatting functions written.
fn add_eos(em: &mut Emitter, ctx: &Ctx, s: &Src, any_chat: bool) {
    let spec = s.spec;
    let datasets = &spec.data.datasets;
    if spec.data.add_eos
        && !ctx.needs_eos
        && !any_chat
        && datasets
            .iter()
            .all(|d| d.format != DatasetFormat::Completion)
    {
        em.cover(
            "data.add_eos",
            Status::NotExpressible,
            "",
            "no formatting function to append EOS to",
        );
    } else if !spec.data.add_eos && any_chat {
        em.cover(
            "data.add_eos",
            Status::NotExpressible,
            "",
            "the chat template closes every turn with its end-of-turn token",
        );
    } else {
        em.cover("data.add_eos", Status::Carried, "EOS_TOKEN", "");
    }
}

/// Batching: packing, padding-free and the shuffle seed.
fn batching(em: &mut Emitter, s: &Src) {
    let Src {
        spec,
        from,
        foreign,
        ..
    } = *s;
    // Batching.
    if spec.data.packing && foreign {
        em.put(
            "SFTConfig.packing",
            json!(true),
            &["data.packing"],
            Status::Carried,
            "",
        );
        em.cover(
            "data.packing",
            Status::Approximated,
            "packing",
            "TRL's best-fit-decreasing packing groups other samples than the source's packer",
        );
    }
    let padding_free_unsloth = !spec.data.packing && spec.model.family != "gemma2";
    if spec.data.padding_free != padding_free_unsloth {
        if spec.data.padding_free && spec.model.family == "gemma2" {
            em.cover(
                "data.padding_free",
                Status::NotExpressible,
                "",
                "Unsloth does not run Gemma-2 padding-free",
            );
        } else if !spec.data.packing {
            let c = em.parity_comment("data.padding_free", &json!(spec.data.padding_free));
            em.put(
                "SFTConfig.padding_free",
                json!(spec.data.padding_free),
                &["data.padding_free"],
                Status::Carried,
                &c,
            );
        } else {
            em.cover("data.padding_free", Status::Carried, "packing", "");
        }
    } else {
        em.cover(
            "data.padding_free",
            Status::Carried,
            "padding_free (auto)",
            "",
        );
    }
    if spec.data.shuffle_seed != spec.training.seed {
        let c = em.parity_comment("data.shuffle_seed", &json!(spec.data.shuffle_seed));
        em.put(
            "SFTConfig.data_seed",
            json!(spec.data.shuffle_seed),
            &["data.shuffle_seed"],
            Status::Carried,
            &c,
        );
    } else {
        em.cover("data.shuffle_seed", Status::Carried, "seed", "");
    }
    if from == "torchtune" && spec.data.shuffle {
        em.cover("data.shuffle_seed", Status::Approximated, "data_seed", "HF's RandomSampler draws another permutation than TorchTune's DistributedSampler from the same seed");
    }
}

/// One dataset's formatting function; also whether it is a chat dataset and the response
/// markers for masking its prompts.
fn dataset_func(
    em: &mut Emitter,
    i: usize,
    d: &Dataset,
    fname: &str,
    add_eos: bool,
    masked: bool,
) -> Built {
    let mut func = Func {
        name: fname.to_string(),
        kind: "text",
        prompt_var: if i == 0 {
            "alpaca_prompt".into()
        } else {
            format!("alpaca_prompt_{i}")
        },
        prompt: String::new(),
        prompt_no_input: String::new(),
        roles: Vec::new(),
        format_args: Vec::new(),
        format_args_no_input: Vec::new(),
        eos: add_eos,
        column: String::new(),
    };
    let fc = FuncCtx {
        d,
        path: format!("data.datasets.{i}"),
        plain: matches!(em.resolved.spec.model.chat_template.as_str(), "none" | ""),
        masked,
    };
    let path = &fc.path;
    match d.format {
        DatasetFormat::Alpaca => alpaca_func(em, &fc, func),
        DatasetFormat::Instruct
            if d.prompt_style == "chat_template"
                || d.templates.get("format").is_none_or(|f| f.is_empty()) =>
        {
            chat_columns_func(em, &fc, func)
        }
        DatasetFormat::Instruct => instruct_func(em, &fc, func),
        DatasetFormat::ChatTemplate => chat_func(em, &fc, func),
        DatasetFormat::Completion => {
            func.column = fc.col("text");
            if !add_eos {
                return (None, false, None);
            }
            (Some(func), false, None)
        }
        other @ DatasetFormat::InputOutput => {
            em.cover(
                &format!("{path}.format"),
                Status::NotExpressible,
                "",
                &format!(
                    "Unsloth notebooks have no `{other}` format; the rows are read as plain text"
                ),
            );
            em.cover(
                &format!("{path}.columns.text"),
                Status::NotExpressible,
                "",
                "the rows are read as plain text from `text`",
            );
            func.column = "text".into();
            (if add_eos { Some(func) } else { None }, false, None)
        }
    }
}

/// What every format's formatting function is built from: the dataset, its report path,
/// whether the model has no chat template, and whether prompts are masked.
struct FuncCtx<'a> {
    d: &'a Dataset,
    path: String,
    plain: bool,
    masked: bool,
}

impl FuncCtx<'_> {
    /// The dataset's column for a role (the role itself when not renamed).
    fn col(&self, role: &str) -> String {
        self.d
            .columns
            .get(role)
            .cloned()
            .unwrap_or_else(|| role.to_string())
    }
}

/// A formatting function (if any), whether it is a chat dataset, and its response markers.
type Built = (Option<Func>, bool, Option<(String, String)>);

/// An Alpaca dataset: its named prompt style as a text prompt, or the Alpaca text as the
/// user turn of the chat template when the style is not known.
fn alpaca_func(em: &mut Emitter, fc: &FuncCtx, mut func: Func) -> Built {
    let FuncCtx {
        d, plain, masked, ..
    } = *fc;
    let path = &fc.path;
    let col = |r: &str| fc.col(r);
    let style = script_data().alpaca_style(&d.prompt_style);
    let chat_wrapped = style.is_none() && !plain;
    if style.is_none() && plain {
        em.cover(
            &format!("{path}.prompt_style"),
            Status::Approximated,
            "formatting_prompts_func",
            "with no chat template the Alpaca text is trained as plain text",
        );
    }
    let st = style.or_else(|| script_data().alpaca_style("alpaca"));
    let Some(st) = st else {
        return (None, false, None);
    };
    let (with, rw) = to_format(&st.with_input(), !chat_wrapped);
    let (without, rn) = to_format(&st.no_input(), !chat_wrapped);
    func.prompt = with;
    func.prompt_no_input = without;
    func.format_args = rw.clone();
    func.format_args_no_input = rn;
    let mut zipped = rw;
    if chat_wrapped {
        zipped.push("output".into());
    }
    func.roles = zipped.iter().map(|r| (r.clone(), col(r))).collect();
    if chat_wrapped {
        func.kind = "chat_prompt";
        func.eos = false;
        em.cover(&format!("{path}.prompt_style"), Status::Approximated, "apply_chat_template", "the Alpaca text is the user turn of the tokenizer's chat template, as TorchTune frames it");
        let m = chat_markers(em);
        return (Some(func), true, m);
    }
    func.kind = "prompt2";
    let markers = text_markers(&st.turn_format);
    (Some(func), false, masked.then_some(markers).flatten())
}

/// An instruct dataset with no prompt format: one user and one assistant turn from two
/// columns, framed by the chat template.
fn chat_columns_func(em: &mut Emitter, fc: &FuncCtx, mut func: Func) -> Built {
    let FuncCtx {
        d, plain, masked, ..
    } = *fc;
    let path = &fc.path;
    let col = |r: &str| fc.col(r);
    // One user turn and one assistant turn from two columns, framed by the chat
    // template (TorchTune's instruct_dataset).
    func.kind = "chat_columns";
    func.eos = false;
    func.roles = ["input", "output"]
        .iter()
        .map(|r| (r.to_string(), col(r)))
        .collect();
    for k in d
        .columns
        .keys()
        .filter(|k| !["input", "output"].contains(&k.as_str()))
    {
        em.cover(
            &format!("{path}.columns.{k}"),
            Status::NotExpressible,
            "",
            "the turn is built from the input and output columns only",
        );
    }
    for k in d.templates.keys() {
        em.cover(
            &format!("{path}.templates.{k}"),
            Status::NotExpressible,
            "",
            "the chat template frames the turn; prompt strings are not used",
        );
    }
    if plain {
        em.cover(
            &format!("{path}.prompt_style"),
            Status::Approximated,
            "apply_chat_template",
            "the model has no chat template; the tokenizer's own is used",
        );
    }
    let m = if masked { chat_markers(em) } else { None };
    (Some(func), true, m)
}

/// An instruct dataset with its own prompt templates, written as text prompts.
fn instruct_func(em: &mut Emitter, fc: &FuncCtx, mut func: Func) -> Built {
    let FuncCtx { d, masked, .. } = *fc;
    let path = &fc.path;
    let col = |r: &str| fc.col(r);
    let format = d.templates.get("format").cloned().unwrap_or_default();
    let no_input = d
        .templates
        .get("no_input_format")
        .cloned()
        .unwrap_or_else(|| format.replace("{input}", ""));
    // The system fields are no-ops when empty (Axolotl's user-defined defaults).
    let noop = |k: &str, v: &str| {
        (k == "system_format" && v == "{system}") || (k == "system_prompt" && v.is_empty())
    };
    for (k, v) in d
        .templates
        .iter()
        .filter(|(k, _)| !["format", "no_input_format"].contains(&k.as_str()))
    {
        if !noop(k, v) {
            em.cover(
                &format!("{path}.templates.{k}"),
                Status::NotExpressible,
                "",
                "the formatting function writes only the prompt templates",
            );
        }
    }
    let (with, rw) = to_format(&format, true);
    func.prompt = with;
    func.roles = rw.iter().map(|r| (r.clone(), col(r))).collect();
    func.format_args = rw;
    if no_input == format.replace("{input}", "") || !format.contains("{input}") {
        func.kind = "prompt";
        if no_input != format.replace("{input}", "") {
            em.cover(
                &format!("{path}.templates.no_input_format"),
                Status::NotExpressible,
                "",
                "the prompt has no input field to switch on",
            );
        }
    } else {
        let (without, rn) = to_format(&no_input, true);
        func.kind = "prompt2";
        func.prompt_no_input = without;
        func.format_args_no_input = rn;
    }
    let markers = text_markers(&format);
    (Some(func), false, masked.then_some(markers).flatten())
}

/// A chat dataset: its messages column, standardized and framed by the chat template.
fn chat_func(em: &mut Emitter, fc: &FuncCtx, mut func: Func) -> Built {
    let FuncCtx { d, masked, .. } = *fc;
    let path = &fc.path;
    let col = |r: &str| fc.col(r);
    func.kind = "chat";
    func.eos = false;
    func.column = col("messages");
    let sharegpt = d.columns.get("role").is_some_and(|r| r == "from")
        && d.columns.get("content").is_none_or(|c| c == "value");
    for k in d.columns.keys().filter(|k| k.as_str() != "messages") {
        if sharegpt && (k == "role" || k == "content") {
            continue; // standardize_sharegpt maps from/value onto role/content
        }
        em.cover(
            &format!("{path}.columns.{k}"),
            Status::NotExpressible,
            "standardize_data_formats",
            "standardize_data_formats only knows the ShareGPT and OpenAI message keys",
        );
    }
    let m = if masked {
        chat_markers_for(em, d)
    } else {
        None
    };
    (Some(func), true, m)
}

/// Markers of a chat dataset: its own, else the chat template's (or the family's default).
fn chat_markers_for(em: &Emitter, d: &Dataset) -> Option<(String, String)> {
    match (
        d.response_markers.get("instruction"),
        d.response_markers.get("response"),
    ) {
        (Some(i), Some(r)) => Some((i.clone(), r.clone())),
        _ => chat_markers(em),
    }
}

fn chat_markers(em: &Emitter) -> Option<(String, String)> {
    let spec = &em.resolved.spec;
    let mut t = spec.model.chat_template.clone();
    if t == "tokenizer_default" {
        t = families::by_name(&spec.model.family)
            .map(|f| f.chat_template.clone())
            .unwrap_or_default();
    }
    script_data()
        .template_by_ir(&t)
        .filter(|t| !t.instruction_part.is_empty())
        .map(|t| (t.instruction_part.clone(), t.response_part.clone()))
}

/// Markers of a text prompt: the line that opens the instruction, and the text after the
/// last field (the response header).
fn text_markers(turn: &str) -> Option<(String, String)> {
    let at = turn.find("{instruction}")?;
    let before = &turn[..at];
    let start = before.rfind("\n\n").map_or(0, |i| i + 2);
    let instruction = before[start..].to_string();
    let last = turn.rfind('}')?;
    let response = turn[last + 1..].trim_start_matches('\n').to_string();
    (!instruction.is_empty() && !response.is_empty()).then_some((instruction, response))
}

/// An IR prompt (`{instruction}`, `{input}` placeholders) as a `str.format` template with
/// positional slots, and the role of each slot; the response slot is appended when asked.
fn to_format(prompt: &str, with_output: bool) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut roles = Vec::new();
    let mut rest = prompt;
    while let Some(at) = rest.find('{') {
        out.push_str(&escape_braces(&rest[..at]));
        let tail = &rest[at..];
        let field = ["{instruction}", "{input}", "{output}", "{system}"]
            .iter()
            .find(|f| tail.starts_with(**f));
        match field {
            Some(f) => {
                out.push_str("{}");
                roles.push(f.trim_matches(['{', '}']).to_string());
                rest = &tail[f.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &tail[1..];
            }
        }
    }
    out.push_str(&escape_braces(rest));
    if with_output {
        out.push_str("{}");
        roles.push("output".into());
    }
    (out, roles)
}

fn load_expr(d: &Dataset) -> String {
    let mut args = Vec::new();
    if d.loader.is_hub() {
        args.push(py_str(&d.path));
        if !d.name.is_empty() {
            args.push(py_str(&d.name));
        }
        if !d.data_files.is_empty() {
            args.push(format!("data_files = {}", py(&json!(d.data_files))));
        }
    } else {
        args.push(py_str(d.loader.as_str()));
        if !d.name.is_empty() {
            args.push(py_str(&d.name));
        }
        let files = if d.data_files.is_empty() {
            py_str(&d.path)
        } else {
            py(&json!(d.data_files))
        };
        args.push(format!("data_files = {files}"));
    }
    args.push(format!("split = {}", py_str(&d.split)));
    format!("load_dataset({})", args.join(", "))
}
