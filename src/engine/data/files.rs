//! Where a dataset's rows come from: JSON / JSON Lines / Parquet files, a local folder of them,
//! or a hub dataset id resolved in the local Hugging Face cache (never downloaded).

use super::super::error::{read_to_string, EngineError, Result, Unsupported};
use super::slice::ReadInstruction;
use crate::ir::Loader;
use serde_json::{Map, Number, Value};
use std::path::{Path, PathBuf};

/// File extensions the engine reads.
const DATA_EXTS: [&str; 3] = ["json", "jsonl", "parquet"];

fn is_data_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DATA_EXTS.contains(&e))
}

/// The loaders the engine reads: `json` (JSON array or JSON Lines), `parquet`, and a hub
/// dataset's own files.
pub fn check_loader(loader: Loader) -> Result<(), Unsupported> {
    match loader {
        Loader::Parquet | Loader::Hub | Loader::Json => Ok(()),
        Loader::Csv
        | Loader::Text
        | Loader::Txt
        | Loader::Arrow
        | Loader::Pandas
        | Loader::Webdataset => Err(Unsupported::new(
            "data.datasets.loader",
            loader,
            "the engine reads json, jsonl and parquet files",
        )),
    }
}

/// The split spec must be one `datasets` reads ([`super::slice`]); slices are applied to
/// local files and hub snapshots alike. A local file or folder has a single split, so its
/// name is not checked (the engine reads every row, then slices).
pub fn check_split(ds: &crate::ir::Dataset) -> Result<(), Unsupported> {
    split_spec(&ds.split)
        .map(|_| ())
        .map_err(|m| Unsupported::new("data.datasets.split", &ds.split, m))
}

/// The read instructions of a split spec; empty is `train`.
fn split_spec(split: &str) -> std::result::Result<Vec<ReadInstruction>, String> {
    super::slice::parse(if split.is_empty() { "train" } else { split })
}

/// One row of a dataset with where it came from (for error messages).
pub struct SourcedRow {
    pub file: std::rc::Rc<PathBuf>,
    /// 0-based index of the row in its file.
    pub index: usize,
    pub row: Map<String, Value>,
}

/// The rows a dataset entry reads: its files' rows, sliced as its `split` says.
pub fn dataset_rows(ds: &crate::ir::Dataset) -> Result<Vec<SourcedRow>> {
    dataset_rows_in(ds, &crate::engine::hub::cache_dirs())
}

/// [`dataset_rows`] with the hub caches given.
pub fn dataset_rows_in(ds: &crate::ir::Dataset, hubs: &[PathBuf]) -> Result<Vec<SourcedRow>> {
    let spec = split_spec(&ds.split)
        .map_err(|m| EngineError::Data(format!("data.datasets.split = `{}`: {m}", ds.split)))?;
    let mut out = Vec::new();
    for ins in spec {
        let mut rows = Vec::new();
        for file in files_of_split(ds, &ins.split, hubs)? {
            let file = std::rc::Rc::new(file);
            for (index, row) in read_rows_as(&file, ds.loader)?.into_iter().enumerate() {
                rows.push(SourcedRow {
                    file: file.clone(),
                    index,
                    row,
                });
            }
        }
        let range = ins
            .rows(rows.len())
            .map_err(|m| EngineError::Data(format!("data.datasets.split = `{}`: {m}", ds.split)))?;
        out.extend(rows.drain(range));
    }
    Ok(out)
}

/// Rows of a file: Parquet when `loader` is `parquet` or the name ends in `.parquet`, else a
/// JSON array or JSON Lines.
pub fn read_rows_as(path: &Path, loader: Loader) -> Result<Vec<Map<String, Value>>> {
    let parquet_extension = path.extension().and_then(|e| e.to_str()) == Some("parquet");
    check_loader(loader)?;
    let parquet = loader == Loader::Parquet || parquet_extension;
    if parquet {
        read_parquet(path)
    } else {
        read_json_rows(path)
    }
}

/// Rows of a JSON array file or a JSON Lines file.
pub fn read_json_rows(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text = read_to_string(path)?;
    let bad = |m: String| EngineError::bad_file(path, m);
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('[') {
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(format!("line {}: {e}", i + 1))))
            .collect::<Result<_>>()?
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(m) => Ok(m),
            _ => Err(bad(format!("row {} is not a JSON object", i + 1))),
        })
        .collect()
}

/// Rows of a Parquet file (polars), each a JSON object in column order, as `datasets` would
/// hand them to the formatter. Strings, numbers, booleans, nulls and lists are read; other
/// column types (structs, dates, binary) are refused with the column's name.
pub fn read_parquet(path: &Path) -> Result<Vec<Map<String, Value>>> {
    use polars::prelude::*;
    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| EngineError::bad_file(path, format!("not a readable Parquet file: {e}")))?;
    let cols = df.columns();
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let mut row = Map::new();
        for c in cols {
            let v = c
                .get(i)
                .map_err(|e| EngineError::bad_file(path, e.to_string()))
                .and_then(|av| {
                    any_to_json(&av).map_err(|t| {
                        EngineError::bad_file(
                            path,
                            format!(
                                "column `{}` has type {t}, which the engine does not read",
                                c.name()
                            ),
                        )
                    })
                })?;
            row.insert(c.name().to_string(), v);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// One polars value as JSON; `Err(type name)` for a type the engine does not read.
fn any_to_json(av: &polars::prelude::AnyValue) -> std::result::Result<Value, String> {
    use polars::prelude::AnyValue as A;
    let f = |x: f64| Number::from_f64(x).map_or(Value::Null, Value::Number);
    Ok(match av {
        A::Null => Value::Null,
        A::Boolean(b) => Value::Bool(*b),
        A::String(s) => Value::String((*s).to_string()),
        A::StringOwned(s) => Value::String(s.to_string()),
        A::UInt8(x) => Value::from(*x),
        A::UInt16(x) => Value::from(*x),
        A::UInt32(x) => Value::from(*x),
        A::UInt64(x) => Value::from(*x),
        A::Int8(x) => Value::from(*x),
        A::Int16(x) => Value::from(*x),
        A::Int32(x) => Value::from(*x),
        A::Int64(x) => Value::from(*x),
        A::Float32(x) => f(f64::from(*x)),
        A::Float64(x) => f(*x),
        A::List(s) => {
            let mut out = Vec::with_capacity(s.len());
            for j in 0..s.len() {
                let v = s.get(j).map_err(|e| e.to_string())?;
                out.push(any_to_json(&v)?);
            }
            Value::Array(out)
        }
        other => return Err(other.dtype().to_string()),
    })
}

/// The files a dataset entry names: `data_files`, else `path` (a file, a folder of
/// .json/.jsonl/.parquet files, or a hub id in the local Hugging Face cache).
pub fn dataset_files(ds: &crate::ir::Dataset) -> Result<Vec<PathBuf>> {
    dataset_files_in(ds, &crate::engine::hub::cache_dirs())
}

/// [`dataset_files`] with the hub caches given (tests pass a temporary one), for the split
/// the spec's first instruction names.
pub fn dataset_files_in(ds: &crate::ir::Dataset, hubs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let split = split_spec(&ds.split)
        .ok()
        .and_then(|s| s.into_iter().next())
        .map_or_else(|| ds.split.clone(), |i| i.split);
    files_of_split(ds, &split, hubs)
}

/// The files of one split (a name, without slice) of a dataset entry.
fn files_of_split(ds: &crate::ir::Dataset, split: &str, hubs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let p = PathBuf::from(&ds.path);
    if !ds.data_files.is_empty() {
        // local files as named, else relative to the dataset's folder or cached hub snapshot
        // (`path: org/name` + `data_files: data/train.parquet`)
        let local: Vec<PathBuf> = ds.data_files.iter().map(PathBuf::from).collect();
        if local.iter().all(|f| f.is_file()) {
            return Ok(local);
        }
        let base = if p.is_dir() {
            Some(p.clone())
        } else if ds.path.contains('/') && !p.exists() {
            hubs.iter().find_map(|hub| {
                crate::engine::hub::snapshot(&hub.join(repo_folder(&ds.path)), Path::is_dir)
            })
        } else {
            None
        };
        return Ok(match base {
            Some(b) => ds.data_files.iter().map(|f| b.join(f)).collect(),
            None => local, // reading names the missing file
        });
    }
    if p.is_file() {
        return Ok(vec![p]);
    }
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
            .map_err(|e| EngineError::io(&p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file() && is_data_file(f))
            .collect();
        files.sort();
        return Ok(files);
    }
    let mut looked = vec![p.display().to_string()];
    for hub in hubs {
        let repo = hub.join(repo_folder(&ds.path));
        looked.push(repo.display().to_string());
        if let Some(snap) = crate::engine::hub::snapshot(&repo, Path::is_dir) {
            let files = snapshot_files(&snap, &ds.name, split);
            if files.is_empty() {
                return Err(EngineError::Data(format!(
                    "hub dataset `{}` is cached at {} but holds no .json/.jsonl/.parquet file for split `{}`{}",
                    ds.path,
                    snap.display(),
                    split,
                    if ds.name.is_empty() { String::new() } else { format!(" of config `{}`", ds.name) }
                )));
            }
            return Ok(files);
        }
    }
    Err(EngineError::Data(format!(
        "dataset `{}` is not a local file or folder, nor in the Hugging Face cache (looked in: {}). \
         Fetch it with `huggingface-cli download --repo-type dataset {}` (the engine never downloads), \
         or save it as JSON/JSONL/Parquet and name the file",
        ds.path,
        looked.join(", "),
        ds.path
    )))
}

/// `org/name` → `datasets--org--name`, the hub cache's folder for a dataset repo.
fn repo_folder(id: &str) -> String {
    format!("datasets--{}", id.replace('/', "--"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else if is_data_file(&p) {
            out.push(p);
        }
    }
}

/// The data files of a snapshot for one config and split, following the hub's file-name
/// conventions (`datasets` `data_files` patterns): under `<config>/` when a config is named;
/// then files whose name starts with the split (`train-00000-of-00001.parquet`,
/// `train.jsonl`) or that sit in a folder named after it; a snapshot without any split-named
/// file is all `train`.
pub fn snapshot_files(snap: &Path, config: &str, split: &str) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(snap, &mut all);
    let rel = |p: &PathBuf| p.strip_prefix(snap).unwrap_or(p).to_path_buf();
    if !config.is_empty() && config != "default" {
        all.retain(|p| rel(p).components().any(|c| c.as_os_str() == config));
    }
    let split = if split.is_empty() { "train" } else { split };
    let names_split = |p: &PathBuf, s: &str| {
        let r = rel(p);
        let stem = r.file_stem().and_then(|n| n.to_str()).unwrap_or("");
        let named = stem == s
            || stem.starts_with(&format!("{s}-"))
            || stem.starts_with(&format!("{s}_"))
            || stem.starts_with(&format!("{s}."));
        named
            || r.parent()
                .is_some_and(|d| d.components().any(|c| c.as_os_str() == s))
    };
    let known = ["train", "validation", "valid", "test", "dev", "eval"];
    let mut files: Vec<PathBuf> = all
        .iter()
        .filter(|p| names_split(p, split))
        .cloned()
        .collect();
    if files.is_empty()
        && split == "train"
        && !all.iter().any(|p| known.iter().any(|s| names_split(p, s)))
    {
        files = all;
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(path: &str, split: &str) -> crate::ir::Dataset {
        crate::ir::Dataset {
            path: path.into(),
            loader: Loader::Hub,
            data_files: vec![],
            name: String::new(),
            split: split.into(),
            format: crate::ir::DatasetFormat::Alpaca,
            prompt_style: String::new(),
            columns: Default::default(),
            templates: Default::default(),
            roles_to_train: vec![],
            response_markers: Default::default(),
        }
    }

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "[]").unwrap();
    }

    #[test]
    fn hub_datasets_resolve_to_their_snapshot_files() {
        let hub = tempfile::tempdir().unwrap();
        let repo = hub.path().join("datasets--tatsu-lab--alpaca");
        let snap = repo.join("snapshots").join("abc123");
        touch(&snap.join("data/train-00000-of-00002.parquet"));
        touch(&snap.join("data/train-00001-of-00002.parquet"));
        touch(&snap.join("data/test-00000-of-00001.parquet"));
        touch(&snap.join("README.md"));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        let hubs = vec![hub.path().join("absent"), hub.path().to_path_buf()];
        let files = dataset_files_in(&ds("tatsu-lab/alpaca", "train"), &hubs).unwrap();
        assert_eq!(
            files,
            vec![
                snap.join("data/train-00000-of-00002.parquet"),
                snap.join("data/train-00001-of-00002.parquet")
            ]
        );
        let test = dataset_files_in(&ds("tatsu-lab/alpaca", "test"), &hubs).unwrap();
        assert_eq!(test, vec![snap.join("data/test-00000-of-00001.parquet")]);
        // a split that is not there is an error naming the snapshot
        let e = dataset_files_in(&ds("tatsu-lab/alpaca", "validation"), &hubs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("abc123") && e.contains("validation"), "{e}");
    }

    #[test]
    fn a_sliced_spec_reads_each_split_in_turn() {
        let hub = tempfile::tempdir().unwrap();
        let snap = hub.path().join("datasets--org--ds/snapshots/r1");
        let write = |name: &str, ids: std::ops::Range<i32>| {
            let rows: Vec<String> = ids.map(|i| format!("{{\"i\": {i}}}")).collect();
            std::fs::create_dir_all(&snap).unwrap();
            std::fs::write(snap.join(name), rows.join("\n")).unwrap();
        };
        write("train.jsonl", 0..10);
        write("test.jsonl", 100..104);
        let ids = |split: &str| -> Vec<i64> {
            dataset_rows_in(&ds("org/ds", split), &[hub.path().to_path_buf()])
                .unwrap()
                .iter()
                .map(|r| r.row["i"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(ids("train[-2:]+test[:50%]"), [8, 9, 100, 101]);
        assert_eq!(ids("test"), [100, 101, 102, 103]);
        assert_eq!(ids("train[7:3]"), Vec::<i64>::new());
    }

    #[test]
    fn data_files_resolve_inside_a_cached_snapshot() {
        let hub = tempfile::tempdir().unwrap();
        let snap = hub.path().join("datasets--org--ds/snapshots/r1");
        touch(&snap.join("files/part.jsonl"));
        let mut d = ds("org/ds", "train");
        d.data_files = vec!["files/part.jsonl".into()];
        assert_eq!(
            dataset_files_in(&d, &[hub.path().to_path_buf()]).unwrap(),
            vec![snap.join("files/part.jsonl")]
        );
    }

    #[test]
    fn an_unsplit_snapshot_is_all_train_and_configs_pick_a_folder() {
        let snap = tempfile::tempdir().unwrap();
        touch(&snap.path().join("alpaca_data.json"));
        assert_eq!(
            snapshot_files(snap.path(), "", "train"),
            vec![snap.path().join("alpaca_data.json")]
        );
        let snap2 = tempfile::tempdir().unwrap();
        touch(&snap2.path().join("en/train.jsonl"));
        touch(&snap2.path().join("de/train.jsonl"));
        assert_eq!(
            snapshot_files(snap2.path(), "de", "train"),
            vec![snap2.path().join("de/train.jsonl")]
        );
    }

    #[test]
    fn a_missing_hub_dataset_says_where_it_looked_and_how_to_get_it() {
        let hub = tempfile::tempdir().unwrap();
        let e = dataset_files_in(&ds("org/absent", "train"), &[hub.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("org/absent"), "{e}");
        assert!(
            e.contains(
                &hub.path()
                    .join("datasets--org--absent")
                    .display()
                    .to_string()
            ),
            "{e}"
        );
        assert!(
            e.contains("huggingface-cli download --repo-type dataset org/absent"),
            "{e}"
        );
    }
}
