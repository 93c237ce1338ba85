//! Expanding a template over sweep points: one config per point and target format, and
//! `index.csv` listing them.

use super::grid::Point;
use super::template::Template;
use crate::translate::{self, Framework, WriteOptions};
use serde_json::Value;
use std::path::Path;

/// One generated config (or the reason its point is impossible).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    pub name: String,
    pub params: Vec<(String, Value)>,
    pub framework: Framework,
    /// Written file, relative to the output folder; empty when the point failed.
    pub path: String,
    /// `ok` or the reason the point could not be generated.
    pub status: String,
}

/// Expand a template over the points and write every config. Impossible points are
/// reported in the result and the others are still written.
pub fn generate(
    template: &Template,
    points: &[Point],
    targets: &[Framework],
    out: &Path,
) -> std::io::Result<Vec<Generated>> {
    std::fs::create_dir_all(out)?;
    let stem = template_stem(&template.source.name);
    let mut results = Vec::new();
    for point in points {
        let name = if point.assignments.is_empty() {
            stem.clone()
        } else {
            format!("{stem}__{}", point.slug())
        };
        let params: Vec<(String, Value)> = point
            .assignments
            .iter()
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect();
        match template.instantiate(point) {
            Ok(resolved) => {
                for &fw in targets {
                    let file = format!("{name}.{}", extension(fw));
                    let opts = WriteOptions {
                        strict: false,
                        source_name: template.source.name.clone(),
                    };
                    let written = translate::write(fw, &resolved, template.framework.name(), &opts);
                    let dir = out.join(fw.name());
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(dir.join(&file), &written.text)?;
                    results.push(Generated {
                        name: name.clone(),
                        params: params.clone(),
                        framework: fw,
                        path: format!("{}/{file}", fw.name()),
                        status: "ok".into(),
                    });
                }
            }
            Err(reason) => {
                for &fw in targets {
                    results.push(Generated {
                        name: name.clone(),
                        params: params.clone(),
                        framework: fw,
                        path: String::new(),
                        status: reason.clone(),
                    });
                }
            }
        }
    }
    write_index(out, &results)?;
    Ok(results)
}

fn template_stem(name: &str) -> String {
    let file = Path::new(name)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("config");
    file.split('.').next().unwrap_or("config").to_string()
}

pub fn extension(fw: Framework) -> &'static str {
    match fw {
        Framework::Unsloth => "py",
        Framework::Ir => "toml",
        _ => "yaml",
    }
}

/// `index.csv`: one row per generated file, one column per parameter.
fn write_index(out: &Path, results: &[Generated]) -> std::io::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    for r in results {
        for (k, _) in &r.params {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let mut csv = String::from("name,framework");
    for k in &keys {
        csv.push(',');
        csv.push_str(&csv_field(k));
    }
    csv.push_str(",path,status\n");
    for r in results {
        csv.push_str(&format!("{},{}", csv_field(&r.name), r.framework));
        for k in &keys {
            let v = r
                .params
                .iter()
                .find(|(p, _)| p == k)
                .map(|(_, v)| crate::translate::table::value_text(v))
                .unwrap_or_default();
            csv.push(',');
            csv.push_str(&csv_field(&v));
        }
        csv.push_str(&format!(
            ",{},{}\n",
            csv_field(&r.path),
            csv_field(&r.status)
        ));
    }
    std::fs::write(out.join("index.csv"), csv)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
