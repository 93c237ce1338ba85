//! Weight diffs: LoRA adapters module by module, full checkpoints tensor by tensor.
//!
//! Adapters are compared on their factors A [r, in] and B [out, r] when the ranks agree, and
//! always on the effective update ΔW = s·B·A (s = α/r, or α/√r with rsLoRA; PEFT
//! `LoraLayer.update_layer`), which is the right comparison when inits or ranks differ.
//! ΔW is never built: with the Gram matrices of the factors,
//!
//!   ⟨B₁A₁, B₂A₂⟩_F = Σᵢⱼ (B₁ᵀB₂)ᵢⱼ (A₁A₂ᵀ)ᵢⱼ        (r₁×r₂ matrices, O((out+in)·r₁·r₂))
//!   ‖s₁B₁A₁ − s₂B₂A₂‖² = s₁²‖B₁A₁‖² + s₂²‖B₂A₂‖² − 2s₁s₂⟨B₁A₁, B₂A₂⟩
//!
//! in f64; the cancellation leaves about 1e-8 of ‖ΔW‖ as the floor of the difference, far
//! below any tolerance used. The max |ΔW₁ − ΔW₂| needs ΔW row by row (O(out·in·r)), so it is
//! computed only under a size limit. Full checkpoints (and non-LoRA tensors of an adapter,
//! such as `modules_to_save`) stream through `tensors::stream_pairs`.

use super::names::{self, Canon, Part, QkFix};
use super::tensors::{self, PairStats, TensorError, TensorSet};
use crate::ingest::{AdapterConfig, WeightSource};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings of a weight comparison.
#[derive(Debug, Clone)]
pub struct WeightOptions {
    /// Largest relative Frobenius error of ΔW (adapters) or of a tensor (full) that passes.
    pub wtol: f64,
    pub threads: usize,
    /// Compute max |ΔW₁ − ΔW₂| when out·in·(r₁+r₂) is at most this many multiply-adds.
    pub delta_max_abs_limit: u64,
}

impl Default for WeightOptions {
    fn default() -> Self {
        WeightOptions {
            wtol: 1e-3,
            threads: tensors::default_threads(),
            delta_max_abs_limit: 1 << 28,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightKind {
    Adapter,
    Full,
}

/// Statistics of two equally shaped tensors.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub norm_a: f64,
    pub norm_b: f64,
    /// ‖a−b‖_F
    pub diff_norm: f64,
    /// ‖a−b‖_F / max(‖a‖_F, ‖b‖_F); 0 when both are zero.
    pub rel: f64,
    /// Cosine similarity; None when either is zero.
    pub cos: Option<f64>,
    /// max |a−b|; None when not computed (ΔW over the size limit).
    pub max_abs: Option<f64>,
    /// Elements that are NaN or infinite on either side (left out of the sums).
    pub non_finite: u64,
}

impl Stats {
    fn from_pair(s: &PairStats) -> Stats {
        Stats {
            norm_a: s.sum_a2.sqrt(),
            norm_b: s.sum_b2.sqrt(),
            diff_norm: s.sum_d2.sqrt(),
            rel: s.rel(),
            cos: s.cos(),
            max_abs: Some(s.max_abs),
            non_finite: s.non_finite,
        }
    }
}

/// One LoRA module compared.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleDiff {
    /// Canonical (HF) module path.
    pub module: String,
    pub rank_a: usize,
    pub rank_b: usize,
    /// [out, in] of ΔW.
    pub shape: [usize; 2],
    pub scale_a: f64,
    pub scale_b: f64,
    /// A factors compared (None when the ranks differ).
    pub lora_a: Option<Stats>,
    /// B factors compared (None when the ranks differ).
    pub lora_b: Option<Stats>,
    /// ΔW = s·B·A compared.
    pub delta: Stats,
    pub within: bool,
}

/// One plain tensor compared.
#[derive(Debug, Clone, Serialize)]
pub struct TensorDiff {
    pub name: String,
    pub dtype_a: String,
    pub dtype_b: String,
    pub shape: Vec<usize>,
    pub stats: Stats,
    pub within: bool,
}

/// A tensor or module present on one side only, or not comparable.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub name: String,
    pub what: String,
}

/// Totals over a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct WeightSummary {
    pub compared: usize,
    pub within: usize,
    pub max_rel: f64,
    pub worst: Option<String>,
    pub min_cos: Option<f64>,
    /// sqrt(Σ‖a−b‖²) / sqrt(Σ max(‖a‖², ‖b‖²)) over everything compared.
    pub global_rel: f64,
    pub bytes_a: u64,
    pub bytes_b: u64,
    pub seconds: f64,
}

/// The weight half of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct WeightDiff {
    pub kind: WeightKind,
    pub files_a: Vec<PathBuf>,
    pub files_b: Vec<PathBuf>,
    pub wtol: f64,
    pub modules: Vec<ModuleDiff>,
    pub tensors: Vec<TensorDiff>,
    /// Present in A only.
    pub only_in_a: Vec<String>,
    /// Present in B only.
    pub only_in_b: Vec<String>,
    /// Present on both sides but not comparable (shape, rank layout, dtype).
    pub mismatched: Vec<Problem>,
    /// LoRA target modules of each side, when they differ.
    pub targets_differ: Option<(Vec<String>, Vec<String>)>,
    pub summary: WeightSummary,
    pub notes: Vec<String>,
}

/// Errors of a weight comparison.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightError {
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// One side is an adapter and the other a full checkpoint.
    #[error("cannot compare {a} with {b}: one is a LoRA adapter, the other a full checkpoint (merge the adapter first)")]
    KindMismatch { a: String, b: String },
}

/// Index canonical names to tensors of one side.
fn index(set: &TensorSet, src: &WeightSource, notes: &mut Vec<String>) -> BTreeMap<Canon, usize> {
    let mut m = BTreeMap::new();
    for (i, t) in set.tensors.iter().enumerate() {
        let c = names::canonical(&t.name, src.origin);
        if let Some(prev) = m.insert(c.clone(), i) {
            notes.push(format!(
                "`{}` and `{}` both map to `{}`; the later is compared",
                set.tensors[prev].name,
                t.name,
                c.full()
            ));
        }
    }
    m
}

fn has_lora(ix: &BTreeMap<Canon, usize>) -> bool {
    ix.keys()
        .any(|c| matches!(c.part, Part::LoraA | Part::LoraB))
}

fn describe(files: &[PathBuf]) -> String {
    files
        .first()
        .map(|f| f.display().to_string())
        .unwrap_or_default()
}

/// Compare the weights of two runs.
pub fn diff_weights(
    a: &WeightSource,
    b: &WeightSource,
    opts: &WeightOptions,
) -> Result<WeightDiff, WeightError> {
    let t0 = std::time::Instant::now();
    let sa = TensorSet::open(&a.files)?;
    let sb = TensorSet::open(&b.files)?;
    let mut notes = Vec::new();
    let ia = index(&sa, a, &mut notes);
    let ib = index(&sb, b, &mut notes);
    let kind = match (has_lora(&ia), has_lora(&ib)) {
        (true, true) => WeightKind::Adapter,
        (false, false) => WeightKind::Full,
        _ => {
            return Err(WeightError::KindMismatch {
                a: describe(&a.files),
                b: describe(&b.files),
            })
        }
    };
    let mut d = WeightDiff {
        kind,
        files_a: a.files.clone(),
        files_b: b.files.clone(),
        wtol: opts.wtol,
        modules: Vec::new(),
        tensors: Vec::new(),
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
        mismatched: Vec::new(),
        targets_differ: None,
        summary: WeightSummary {
            compared: 0,
            within: 0,
            max_rel: 0.0,
            worst: None,
            min_cos: None,
            global_rel: 0.0,
            bytes_a: sa.data_bytes(),
            bytes_b: sb.data_bytes(),
            seconds: 0.0,
        },
        notes,
    };
    let mut plain: Vec<(Canon, usize, usize)> = Vec::new();
    if kind == WeightKind::Adapter {
        diff_adapters(a, b, &sa, &sb, &ia, &ib, opts, &mut d, &mut plain)?;
    } else {
        for (c, &x) in &ia {
            match ib.get(c) {
                Some(&y) => plain.push((c.clone(), x, y)),
                None => d.only_in_a.push(c.full()),
            }
        }
        d.only_in_b
            .extend(ib.keys().filter(|c| !ia.contains_key(c)).map(Canon::full));
    }
    diff_plain(&sa, &sb, plain, opts, &mut d);
    let dtype_mixed = d.tensors.iter().filter(|t| t.dtype_a != t.dtype_b).count();
    if dtype_mixed > 0 {
        d.notes.push(format!("{dtype_mixed} tensors have different dtypes on the two sides; both are compared as f32"));
    }
    summarise(&mut d);
    d.summary.seconds = t0.elapsed().as_secs_f64();
    Ok(d)
}

/// Compare plain tensors paired by name: check shapes and dtypes (a mismatch is a
/// [`Problem`]), then stream the comparable pairs.
fn diff_plain(
    sa: &TensorSet,
    sb: &TensorSet,
    plain: Vec<(Canon, usize, usize)>,
    opts: &WeightOptions,
    d: &mut WeightDiff,
) {
    let mut pairs = Vec::new();
    let mut names_of = Vec::new();
    for (c, x, y) in plain {
        let (ta, tb) = (&sa.tensors[x], &sb.tensors[y]);
        if ta.shape != tb.shape {
            d.mismatched.push(Problem {
                name: c.full(),
                what: format!("shape {:?} vs {:?}", ta.shape, tb.shape),
            });
            continue;
        }
        if let Err(dt) = ta.dtype.as_ref().and(tb.dtype.as_ref()) {
            d.mismatched.push(Problem {
                name: c.full(),
                what: format!("dtype {dt} is not compared"),
            });
            continue;
        }
        pairs.push((x, y));
        names_of.push(c.full());
    }
    let stats = tensors::stream_pairs(sa, sb, &pairs, opts.threads);
    for ((name, &(x, y)), s) in names_of.into_iter().zip(&pairs).zip(&stats) {
        let st = Stats::from_pair(s);
        let within = st.rel <= opts.wtol && st.non_finite == 0;
        let dt = |t: &tensors::TensorMeta| {
            t.dtype
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|e| e.clone())
        };
        d.tensors.push(TensorDiff {
            name,
            dtype_a: dt(&sa.tensors[x]),
            dtype_b: dt(&sb.tensors[y]),
            shape: sa.tensors[x].shape.clone(),
            stats: st,
            within,
        });
    }
}

/// The pieces of one LoRA module on one side.
#[derive(Default)]
struct Factors {
    a: Option<usize>,
    b: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
fn diff_adapters(
    a: &WeightSource,
    b: &WeightSource,
    sa: &TensorSet,
    sb: &TensorSet,
    ia: &BTreeMap<Canon, usize>,
    ib: &BTreeMap<Canon, usize>,
    opts: &WeightOptions,
    d: &mut WeightDiff,
    plain: &mut Vec<(Canon, usize, usize)>,
) -> Result<(), WeightError> {
    let (fix_a, note_a) = names::qk_fix(a.origin, a.model.as_ref());
    let (fix_b, note_b) = names::qk_fix(b.origin, b.model.as_ref());
    for (side, n) in [("A", note_a), ("B", note_b)] {
        if let Some(n) = n {
            d.notes.push(format!("{side}: {n}"));
        }
    }
    let cfg_a = a.adapter_config.as_ref().or(b.adapter_config.as_ref());
    let cfg_b = b.adapter_config.as_ref().or(a.adapter_config.as_ref());
    for (side, own, borrowed) in [
        ("A", &a.adapter_config, cfg_a),
        ("B", &b.adapter_config, cfg_b),
    ] {
        match (own, borrowed) {
            (None, Some(c)) => d.notes.push(format!(
                "{side} has no adapter_config.json; its LoRA scale uses the other side's alpha ({})",
                c.lora_alpha
            )),
            (None, None) => d.notes.push(format!("{side} has no adapter_config.json; LoRA scale taken as 1")),
            _ => {}
        }
    }
    if let (Some(x), Some(y)) = (&a.adapter_config, &b.adapter_config) {
        let (mut tx, mut ty) = (x.target_modules.clone(), y.target_modules.clone());
        tx.sort();
        ty.sort();
        if tx != ty {
            d.targets_differ = Some((tx, ty));
        }
    }
    let group = |ix: &BTreeMap<Canon, usize>| {
        let mut m: BTreeMap<String, Factors> = BTreeMap::new();
        for (c, &i) in ix {
            match c.part {
                Part::LoraA => m.entry(c.module.clone()).or_default().a = Some(i),
                Part::LoraB => m.entry(c.module.clone()).or_default().b = Some(i),
                _ => {}
            }
        }
        m
    };
    let (ga, gb) = (group(ia), group(ib));
    for (module, fa) in &ga {
        let Some(fb) = gb.get(module) else {
            d.only_in_a.push(module.clone());
            continue;
        };
        match module_diff(
            module,
            (sa, fa, fix_a, a, cfg_a),
            (sb, fb, fix_b, b, cfg_b),
            opts,
        ) {
            Ok(m) => d.modules.push(m),
            Err(p) => d.mismatched.push(p),
        }
    }
    d.only_in_b
        .extend(gb.keys().filter(|m| !ga.contains_key(*m)).cloned());
    // Everything else (biases, DoRA magnitudes, modules_to_save) tensor by tensor.
    for (c, &x) in ia {
        if matches!(c.part, Part::LoraA | Part::LoraB) {
            continue;
        }
        match ib.get(c) {
            Some(&y) => plain.push((c.clone(), x, y)),
            None => d.only_in_a.push(c.full()),
        }
    }
    d.only_in_b.extend(
        ib.keys()
            .filter(|c| !matches!(c.part, Part::LoraA | Part::LoraB) && !ia.contains_key(c))
            .map(Canon::full),
    );
    Ok(())
}

/// A loaded factor pair of one side: A [r, in], B [out, r] (B already in HF row layout).
struct Loaded {
    a: Vec<f64>,
    b: Vec<f64>,
    r: usize,
    inn: usize,
    out: usize,
    scale: f64,
}

type Side<'a> = (
    &'a TensorSet,
    &'a Factors,
    QkFix,
    &'a WeightSource,
    Option<&'a AdapterConfig>,
);

fn load_side(module: &str, (set, f, fix, src, cfg): Side<'_>) -> Result<Loaded, Problem> {
    let problem = |what: String| Problem {
        name: module.to_string(),
        what,
    };
    let (Some(ia), Some(ib)) = (f.a, f.b) else {
        return Err(problem(format!(
            "{} has only lora_{} in {}",
            module,
            if f.a.is_some() { "A" } else { "B" },
            describe(&src.files)
        )));
    };
    let (ta, tb) = (&set.tensors[ia], &set.tensors[ib]);
    if ta.shape.len() != 2 || tb.shape.len() != 2 || ta.shape[0] != tb.shape[1] {
        return Err(problem(format!(
            "lora_A {:?} and lora_B {:?} do not chain (want [r, in] and [out, r])",
            ta.shape, tb.shape
        )));
    }
    let (r, inn, out) = (ta.shape[0], ta.shape[1], tb.shape[0]);
    let av = set.read_f64(ta).map_err(|e| problem(e.to_string()))?;
    let bv = set.read_f64(tb).map_err(|e| problem(e.to_string()))?;
    let heads = |m: &crate::ingest::ModelShape| {
        if module.ends_with("self_attn.q_proj") {
            Some((m.num_heads, m.head_dim))
        } else if module.ends_with("self_attn.k_proj") {
            Some((m.num_kv_heads, m.head_dim))
        } else {
            None
        }
    };
    let bv = match (fix, src.model.as_ref().and_then(heads)) {
        (QkFix::None, _) | (_, None) => bv,
        (fix, Some((h, hd))) => names::permute_rows(&bv, out, r, h, hd, fix).ok_or_else(|| {
            problem(format!(
                "q/k rows {out} do not split into {h} heads of {hd}"
            ))
        })?,
    };
    let scale = cfg.map(|c| c.scale(module, r)).unwrap_or(1.0);
    Ok(Loaded {
        a: av,
        b: bv,
        r,
        inn,
        out,
        scale,
    })
}

fn module_diff(
    module: &str,
    x: Side<'_>,
    y: Side<'_>,
    opts: &WeightOptions,
) -> Result<ModuleDiff, Problem> {
    let p = load_side(module, x)?;
    let q = load_side(module, y)?;
    if p.out != q.out || p.inn != q.inn {
        return Err(Problem {
            name: module.to_string(),
            what: format!("ΔW shape [{}, {}] vs [{}, {}]", p.out, p.inn, q.out, q.inn),
        });
    }
    let (lora_a, lora_b) = if p.r == q.r {
        (Some(direct(&p.a, &q.a)), Some(direct(&p.b, &q.b)))
    } else {
        (None, None)
    };
    // Gram products, all r×r.
    let nn_p = inner(&p, &p);
    let nn_q = inner(&q, &q);
    let pq = inner(&p, &q);
    let (sp, sq) = (p.scale, q.scale);
    let na2 = sp * sp * nn_p;
    let nb2 = sq * sq * nn_q;
    let dot = sp * sq * pq;
    let d2 = (na2 + nb2 - 2.0 * dot).max(0.0);
    let (na, nb) = (na2.max(0.0).sqrt(), nb2.max(0.0).sqrt());
    let denom = na.max(nb);
    let rel = if denom == 0.0 { 0.0 } else { d2.sqrt() / denom };
    let cos = (na > 0.0 && nb > 0.0).then(|| (dot / (na * nb)).clamp(-1.0, 1.0));
    let cost = (p.out as u64) * (p.inn as u64) * ((p.r + q.r) as u64);
    let max_abs = (cost <= opts.delta_max_abs_limit).then(|| delta_max_abs(&p, &q));
    let non_finite = [&p.a, &p.b, &q.a, &q.b]
        .iter()
        .map(|v| v.iter().filter(|x| !x.is_finite()).count() as u64)
        .sum();
    let delta = Stats {
        norm_a: na,
        norm_b: nb,
        diff_norm: d2.sqrt(),
        rel,
        cos,
        max_abs,
        non_finite,
    };
    let within = delta.rel <= opts.wtol && non_finite == 0;
    Ok(ModuleDiff {
        module: module.to_string(),
        rank_a: p.r,
        rank_b: q.r,
        shape: [p.out, p.inn],
        scale_a: sp,
        scale_b: sq,
        lora_a,
        lora_b,
        delta,
        within,
    })
}

/// Element-wise statistics of two equally sized f64 slices.
fn direct(x: &[f64], y: &[f64]) -> Stats {
    let mut s = PairStats::default();
    for (a, b) in x.iter().zip(y) {
        if !(a.is_finite() && b.is_finite()) {
            s.non_finite += 1;
            continue;
        }
        let d = a - b;
        s.sum_d2 += d * d;
        s.sum_a2 += a * a;
        s.sum_b2 += b * b;
        s.dot += a * b;
        s.max_abs = s.max_abs.max(d.abs());
    }
    Stats::from_pair(&s)
}

/// ⟨B₁A₁, B₂A₂⟩_F = Σᵢⱼ (Σₒ B₁[o,i]B₂[o,j]) (Σₖ A₁[i,k]A₂[j,k]).
fn inner(p: &Loaded, q: &Loaded) -> f64 {
    let (r1, r2) = (p.r, q.r);
    let mut gb = vec![0.0; r1 * r2];
    for o in 0..p.out {
        let (rp, rq) = (&p.b[o * r1..(o + 1) * r1], &q.b[o * r2..(o + 1) * r2]);
        for i in 0..r1 {
            for j in 0..r2 {
                gb[i * r2 + j] += rp[i] * rq[j];
            }
        }
    }
    let mut total = 0.0;
    for i in 0..r1 {
        let ai = &p.a[i * p.inn..(i + 1) * p.inn];
        for j in 0..r2 {
            let aj = &q.a[j * q.inn..(j + 1) * q.inn];
            let ga: f64 = ai.iter().zip(aj).map(|(x, y)| x * y).sum();
            total += gb[i * r2 + j] * ga;
        }
    }
    total
}

/// max |s₁B₁A₁ − s₂B₂A₂|, one row of ΔW at a time (each side's row built separately, so
/// identical inputs give exactly 0).
fn delta_max_abs(p: &Loaded, q: &Loaded) -> f64 {
    let row_of = |side: &Loaded, o: usize, row: &mut Vec<f64>| {
        row.iter_mut().for_each(|x| *x = 0.0);
        for i in 0..side.r {
            let c = side.scale * side.b[o * side.r + i];
            if c == 0.0 {
                continue;
            }
            for (x, a) in row
                .iter_mut()
                .zip(&side.a[i * side.inn..(i + 1) * side.inn])
            {
                *x += c * a;
            }
        }
    };
    let (mut rp, mut rq) = (vec![0.0; p.inn], vec![0.0; q.inn]);
    let mut m: f64 = 0.0;
    for o in 0..p.out {
        row_of(p, o, &mut rp);
        row_of(q, o, &mut rq);
        m = rp.iter().zip(&rq).fold(m, |m, (x, y)| m.max((x - y).abs()));
    }
    m
}

fn summarise(d: &mut WeightDiff) {
    let s = &mut d.summary;
    let (mut num, mut den) = (0.0, 0.0);
    let items = d
        .modules
        .iter()
        .map(|m| (&m.module, &m.delta, m.within))
        .chain(d.tensors.iter().map(|t| (&t.name, &t.stats, t.within)));
    for (name, st, within) in items {
        s.compared += 1;
        s.within += within as usize;
        if st.rel > s.max_rel || s.worst.is_none() {
            s.max_rel = st.rel;
            s.worst = Some(name.clone());
        }
        if let Some(c) = st.cos {
            s.min_cos = Some(s.min_cos.map_or(c, |m: f64| m.min(c)));
        }
        num += st.diff_norm * st.diff_norm;
        den += st.norm_a.max(st.norm_b).powi(2);
    }
    s.global_rel = if den > 0.0 { (num / den).sqrt() } else { 0.0 };
}

#[cfg(test)]
mod tests;
