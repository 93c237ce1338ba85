//! Templates: loading one (syntax errors located), the minijinja environment with its
//! helpers, and instantiating a sweep point into a validated spec, `--set` overrides of IR
//! fields included.

use super::grid::{Assignment, Point};
use crate::diag::{did_you_mean, Diagnostic, Severity, Source, Span};
use crate::ir::{tree, validate, Origin, Resolved};
use crate::translate::{self, Framework, ReadError};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A template and how to read it.
pub struct Template {
    pub source: Source,
    pub framework: Framework,
    /// Variables the template's expressions refer to.
    pub variables: BTreeSet<String>,
}

impl Template {
    /// Load a template; syntax errors name the line and column.
    pub fn load(path: &Path, from: Option<Framework>) -> Result<Template, Diagnostic> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostic::error(
                "io",
                format!("cannot read template {}: {e}", path.display()),
            )
        })?;
        let source = Source::new(path.display().to_string(), text);
        let framework = from
            .or_else(|| Framework::detect(strip_j2(path).as_path(), &source.text))
            .ok_or_else(|| {
                Diagnostic::error(
                    "unknown-format",
                    "cannot tell which framework this template is for",
                )
                .with_help("pass --from axolotl|torchtune|unsloth|ir")
                .locate(&source)
            })?;
        let env = environment();
        let tmpl = env
            .template_from_str(&source.text)
            .map_err(|e| template_error(&source, &e))?;
        let variables = tmpl.undeclared_variables(false).into_iter().collect();
        Ok(Template {
            source,
            framework,
            variables,
        })
    }

    /// Render the template for one point and read it into the IR.
    pub(super) fn instantiate(&self, point: &Point) -> Result<Resolved, String> {
        let mut ctx = Value::Object(serde_json::Map::new());
        let mut overrides = Vec::new();
        for a in &point.assignments {
            let root = a.key.split('.').next().unwrap_or(&a.key);
            if self.variables.contains(root) {
                tree::set_path(&mut ctx, &a.key, a.value.clone());
            } else {
                overrides.push(a.clone());
            }
        }
        let env = environment();
        let text = env
            .render_str(&self.source.text, ctx)
            .map_err(|e| render_message(&self.source, &e))?;
        let rendered = Source::new(format!("{} [{}]", self.source.name, point.label()), text);
        let mut parsed =
            translate::read(self.framework, &rendered).map_err(|e| read_message(&rendered, &e))?;
        // Generated configs must be exact: an unknown key is an error, not a warning.
        if let Some(d) = parsed
            .diagnostics
            .iter()
            .find(|d| d.id == "unknown-key" && d.severity >= Severity::Warning)
        {
            return Err(d.render(Some(&rendered)).trim_end().to_string());
        }
        apply_overrides(&mut parsed.resolved, &overrides)?;
        Ok(parsed.resolved)
    }
}

fn strip_j2(path: &Path) -> PathBuf {
    match path.extension().and_then(|e| e.to_str()) {
        Some("j2") | Some("jinja") => path.with_extension(""),
        _ => path.to_path_buf(),
    }
}

/// The minijinja environment templates render in: strict undefined variables, and helpers
/// for derived values.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_function("accum_for", accum_for);
    env.add_function("warmup_steps", warmup_steps);
    env
}

/// `accum_for(global_batch, micro_batch, devices)`: gradient accumulation that gives the
/// global batch, or an error when it does not divide evenly.
fn accum_for(global: u64, micro: u64, devices: u64) -> Result<u64, minijinja::Error> {
    let per_step = micro * devices;
    if per_step == 0 || global % per_step != 0 {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("impossible: global batch {global} is not a multiple of micro batch {micro} × {devices} devices"),
        ));
    }
    Ok(global / per_step)
}

/// `warmup_steps(ratio, total_steps)`: ceil(ratio × total), as HF's `get_warmup_steps`.
fn warmup_steps(ratio: f64, total: u64) -> u64 {
    (ratio * total as f64).ceil() as u64
}

/// Apply `adapter.rank=16`-style overrides to a spec, then re-derive. A global batch given
/// as an override fixes the accumulation steps (impossible when it does not divide).
pub fn apply_overrides(r: &mut Resolved, overrides: &[Assignment]) -> Result<(), String> {
    if overrides.is_empty() {
        return Ok(());
    }
    let mut value = r.spec.to_value();
    let flat = r.spec.flat();
    let mut wants_global = None;
    for a in overrides {
        let known = flat.contains_key(&a.key) || tree::get_path(&value, &a.key).is_some();
        if !known {
            let hint = did_you_mean(&a.key, flat.keys().map(String::as_str))
                .map(|s| format!("; {s}"))
                .unwrap_or_default();
            return Err(format!(
                "`{}` is neither a variable of the template nor an IR field{hint} (IR fields: `tunebridge inspect <config>`)",
                a.key
            ));
        }
        if a.key == "batch.global_batch" {
            wants_global = a.value.as_u64();
        }
        tree::set_path(&mut value, &a.key, a.value.clone());
        r.provenance
            .set(a.key.clone(), Origin::explicit(format!("--set {}", a.key)));
    }
    r.spec = crate::ir::RunSpec::from_value(value)
        .map_err(|e| format!("override does not fit the IR: {e}"))?;
    if let Some(global) = wants_global {
        let b = &r.spec.batch;
        let accum =
            accum_for(global, b.micro_batch_per_device as u64, b.devices as u64).map_err(|e| {
                e.detail()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            })?;
        r.spec.batch.grad_accum_steps = accum as u32;
        r.provenance.set(
            "batch.grad_accum_steps",
            Origin::Derived {
                from: vec!["batch.global_batch".into(), "batch.devices".into()],
                rule: format!("global batch {global} / (micro batch × devices)"),
            },
        );
    }
    if r.spec.schedule.warmup_ratio > 0.0
        && r.spec.training.max_steps > 0
        && !r.provenance.is_explicit("schedule.warmup_steps")
    {
        r.spec.schedule.warmup_steps =
            warmup_steps(r.spec.schedule.warmup_ratio, r.spec.training.max_steps);
    }
    validate::derive(r);
    let errors: Vec<String> = validate::validate(r)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message)
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(())
}

fn template_error(source: &Source, e: &minijinja::Error) -> Diagnostic {
    let span = e.line().map(|line| {
        let start = source.offset_of(line, 1);
        let range = e.range().filter(|r| r.end <= source.text.len());
        match range {
            Some(r) => Span::new(r.start, r.end),
            None => Span::new(start, start + source.text[start..].find('\n').unwrap_or(0)),
        }
    });
    let detail = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    let (id, message) = match e.kind() {
        minijinja::ErrorKind::SyntaxError => (
            "template-syntax",
            format!("template syntax error: {detail}"),
        ),
        minijinja::ErrorKind::UndefinedError => {
            let name = span
                .map(|s| source.text[s.start..s.end].trim().to_string())
                .unwrap_or_default();
            (
                "undefined-variable",
                format!("template variable `{name}` has no value"),
            )
        }
        _ if detail.starts_with("impossible") => ("impossible", detail),
        _ => ("template", format!("template error: {detail}")),
    };
    Diagnostic::error(id, message).at(span).locate(source)
}

fn render_message(source: &Source, e: &minijinja::Error) -> String {
    let d = template_error(source, e);
    let hint = if e.kind() == minijinja::ErrorKind::UndefinedError {
        "\n  help: give it a value with --set NAME=VALUE or --grid NAME=V1,V2"
    } else {
        ""
    };
    format!("{}{hint}", d.render(Some(source)).trim_end())
}

fn read_message(source: &Source, e: &ReadError) -> String {
    e.diagnostics()
        .iter()
        .map(|d| d.render(Some(source)))
        .collect::<String>()
        .trim_end()
        .to_string()
}
