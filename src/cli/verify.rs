//! `tunebridge verify CONFIG --against FRAMEWORK`: the one-command answer to "will my port
//! give the same run?" — port the config, run both flavours on the native engine, diff the
//! curves and adapters, and write the report.

use super::input;
use crate::diag::Source;
use crate::diff::{self, DiffOptions};
use crate::engine::{self, Flavour, RunOptions};
use crate::ingest;
use crate::translate::{self, Framework, Status, WriteOptions};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Port a config to another framework, train both the original and the port on tunebridge's
/// engine (each with its own framework's semantics), and diff the two runs.
///
/// The output folder gets `ported/` (the translated config), `a-<framework>/` and
/// `b-<framework>/` (the two run directories) and `report/` (Markdown, HTML, PNG/SVG plots,
/// CSV). Exit 0 when the runs match within tolerance, 1 when they differ.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Config or script to verify (Axolotl, TorchTune, Unsloth or run.toml).
    pub config: PathBuf,
    /// The framework the port targets.
    #[arg(long, value_enum)]
    pub against: Framework,
    #[arg(long, value_enum)]
    pub from: Option<Framework>,
    /// Plan the port for this many GPUs (the engine still runs on one device).
    #[arg(long)]
    pub devices: Option<u32>,
    /// Optimizer steps for both runs (default: the config's).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute dtype for both runs (`fp32` for a CPU parity run of a bf16 config).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Output folder.
    #[arg(short, long, default_value = "out/verify")]
    pub output: PathBuf,
    /// Relative tolerance on the loss (default from the precision).
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: VerifyArgs) -> anyhow::Result<u8> {
    let loaded = match input::load(&a.config, a.from, a.quiet || a.json)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let from = loaded.framework;
    let flavour_a =
        Flavour::from_framework(from).unwrap_or_else(|| Flavour::of_spec(&loaded.parsed.resolved));
    let flavour_b = Flavour::from_framework(a.against).ok_or_else(|| {
        anyhow::anyhow!("--against must name a framework: axolotl, torchtune or unsloth")
    })?;
    let mut resolved_a = loaded.parsed.resolved.clone();
    if let Some(d) = a.devices {
        translate::retarget_devices(&mut resolved_a, d);
    }
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("cannot create {}", a.output.display()))?;

    // 1. Port, and read the port back exactly as the target framework's user would hand it to us.
    let opts = WriteOptions {
        strict: false,
        source_name: loaded.source.name.clone(),
    };
    let written = translate::write(a.against, &resolved_a, from.name(), &opts);
    let ported_path = a.output.join("ported").join(a.against.default_file_name());
    std::fs::create_dir_all(ported_path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&ported_path, &written.text)?;
    let ported_source = Source::new(ported_path.display().to_string(), written.text.clone());
    let mut resolved_b = match translate::read(a.against, &ported_source) {
        Ok(p) => p.resolved,
        Err(e) => {
            input::print_diagnostics(
                &e.diagnostics(),
                &ported_source,
                crate::diag::Severity::Info,
            );
            anyhow::bail!(
                "the {} port of {} does not read back",
                a.against,
                loaded.source.name
            );
        }
    };
    let lossy: Vec<&translate::report::Entry> = written.report.lossy().collect();
    if !a.quiet && !a.json {
        eprintln!(
            "ported {} ({from}) → {} ({}): {} field(s) approximated or not expressible",
            loaded.source.name,
            ported_path.display(),
            a.against,
            lossy.len()
        );
        for e in &lossy {
            eprintln!("  {:<15} {}  {}", e.status.label(), e.field, e.note);
        }
    }
    // Both sides start from the same initial adapter, so the comparison isolates what the
    // port changes rather than two random initialisations.
    let init_a = resolved_a.spec.adapter.init_from.clone();
    if !init_a.is_empty() && resolved_b.spec.adapter.init_from.is_empty() {
        resolved_b.spec.adapter.init_from = init_a;
        if !a.quiet && !a.json {
            eprintln!(
                "  (both runs start from the initial adapter {})",
                resolved_b.spec.adapter.init_from
            );
        }
    }

    // 2. Train both flavours on the engine.
    let device = engine::parse_device(&a.device)?;
    let run_dir_a = a.output.join(format!("a-{from}"));
    let run_dir_b = a.output.join(format!("b-{}", a.against));
    for (resolved, flavour, dir) in [
        (&resolved_a, flavour_a, &run_dir_a),
        (&resolved_b, flavour_b, &run_dir_b),
    ] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        let mut o = RunOptions::new(flavour);
        o.device = device;
        o.output = Some(dir.clone());
        o.max_steps = a.max_steps;
        o.compute_dtype = a.dtype.clone();
        o.progress = !a.quiet && !a.json;
        engine::run(resolved, &o)
            .with_context(|| format!("training the {flavour:?} flavour into {}", dir.display()))?;
    }

    // 3. Diff and report.
    let ra = ingest::read_run(&run_dir_a, None)?;
    let rb = ingest::read_run(&run_dir_b, None)?;
    let dopts = DiffOptions {
        rtol: a.rtol,
        ..DiffOptions::default()
    };
    let cmp = diff::compare(&ra, &rb, &dopts)?;
    let report_dir = a.output.join("report");
    let files = diff::report::write_report(&cmp, &report_dir)?;
    write_port_report(&report_dir, &written.report)?;
    if a.json {
        let mut v = diff::report::json(&cmp);
        v["port"] = serde_json::to_value(&written.report)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", diff::report::terminal(&cmp));
        let lossy_fields = written.report.count(Status::Approximated)
            + written.report.count(Status::NotExpressible);
        println!(
            "port report: {lossy_fields} lossy field(s) — {}",
            report_dir.join("port.md").display()
        );
        println!(
            "report: {}",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(if cmp.verdict.pass {
        super::EXIT_OK
    } else {
        super::EXIT_DIFFERS
    })
}

/// The port report beside the diff report, as Markdown.
fn write_port_report(dir: &Path, report: &translate::PortReport) -> std::io::Result<()> {
    let mut md = format!(
        "# Port report: {} → {}\n\nSource: `{}`\n\n",
        report.from, report.to, report.source
    );
    md.push_str(&format!(
        "{} carried · {} defaulted · {} approximated · {} not expressible\n\n",
        report.count(Status::Carried),
        report.count(Status::Defaulted),
        report.count(Status::Approximated),
        report.count(Status::NotExpressible)
    ));
    md.push_str("| field | value | status | target key | note |\n|---|---|---|---|---|\n");
    for e in &report.entries {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.field,
            translate::report::compact(&e.value).replace('|', "\\|"),
            e.status.label(),
            e.target_key,
            e.note.replace('|', "\\|")
        ));
    }
    if !report.warnings.is_empty() {
        md.push_str("\n## Warnings\n\n");
        for w in &report.warnings {
            md.push_str(&format!("- `{}`: {}\n", w.id, w.message));
        }
    }
    std::fs::write(dir.join("port.md"), md)
}
