//! Sample order, reproduced bit for bit from the generators the frameworks use.
//!
//! - `torch.randperm(n, generator=g)` after `g.manual_seed(s)` (CPU): a Fisher–Yates pass over
//!   `0..n` with `z = mt19937() % (n − i)` (ATen `randperm_cpu`, the path for
//!   n < 2³²/20). TorchTune's `DistributedSampler` draws it with seed `0 + epoch`; the HF
//!   Trainer (accelerate's `SeedableRandomSampler`) with `seed + epoch`.
//! - `datasets.Dataset.shuffle(seed)`: `numpy.random.default_rng(seed).permutation(n)`, i.e.
//!   `SeedSequence(seed)` → PCG64 (XSL-RR 128/64) → numpy's backward Fisher–Yates with masked
//!   rejection sampling. Axolotl shuffles its merged dataset this way before the Trainer
//!   samples it.
//!
//! Both are exercised against values printed by torch 2.11 and numpy 2.x in the tests below.
//!
//! - `iter(DataLoader)`: every iteration of a PyTorch `DataLoader` built without a `generator`
//!   draws its `_base_seed` from the **global** CPU generator ([`dataloader_iter_draw`]).
//!   TorchTune iterates its loader once per epoch; the HF Trainer once per epoch and once per
//!   evaluation. LoRA dropout draws its masks from that generator, so the engine makes the
//!   same draw at the same points (checked against TorchTune and Axolotl runs with dropout).

/// The draw `iter(DataLoader)` makes on the global CPU generator:
/// `torch.empty((), dtype=torch.int64).random_()` (torch/utils/data/dataloader.py,
/// `_BaseDataLoaderIter.__init__`, `loader.generator` = None).
pub fn dataloader_iter_draw() {
    let mut t = tch::Tensor::empty([], (tch::Kind::Int64, tch::Device::Cpu));
    let _ = t.random_();
}

/// MT19937 as ATen's `at::mt19937` (seeded with the low 32 bits of the seed).
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; 624];
        state[0] = (seed & 0xffff_ffff) as u32;
        for j in 1..624 {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= MATRIX_A;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }
}

/// `torch.randperm(n, generator=torch.Generator().manual_seed(seed))` on the CPU.
pub fn torch_randperm(n: usize, seed: u64) -> Vec<usize> {
    assert!(
        (n as u64) < u64::from(u32::MAX) / 20,
        "large-n randperm uses another ATen path"
    );
    let mut gen = Mt19937::new(seed);
    let mut r: Vec<usize> = (0..n).collect();
    for i in 0..n.saturating_sub(1) {
        let z = (gen.next_u32() as usize) % (n - i);
        r.swap(i, z + i);
    }
    r
}

/// numpy `SeedSequence(seed).generate_state(n_words, uint64)` (pool size 4, 32-bit words).
fn seed_sequence_u64(seed: u64, n_words: usize) -> Vec<u64> {
    const INIT_A: u32 = 0x43b0_d7e5;
    const MULT_A: u32 = 0x931e_8875;
    const INIT_B: u32 = 0x8b51_f9dd;
    const MULT_B: u32 = 0x58f3_8ded;
    const MIX_MULT_L: u32 = 0xca01_f9dd;
    const MIX_MULT_R: u32 = 0x4973_f715;
    const XSHIFT: u32 = 16;
    // The entropy as little-endian 32-bit words (an int is split into words, low first).
    let mut entropy: Vec<u32> = Vec::new();
    let mut s = seed;
    loop {
        entropy.push((s & 0xffff_ffff) as u32);
        s >>= 32;
        if s == 0 {
            break;
        }
    }
    let mut hash_const = INIT_A;
    let hashmix = |value: u32, hc: &mut u32| -> u32 {
        let mut v = value ^ *hc;
        *hc = hc.wrapping_mul(MULT_A);
        v = v.wrapping_mul(*hc);
        v ^ (v >> XSHIFT)
    };
    let mix = |x: u32, y: u32| -> u32 {
        let r = MIX_MULT_L
            .wrapping_mul(x)
            .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> XSHIFT)
    };
    let mut pool = [0u32; 4];
    for (i, p) in pool.iter_mut().enumerate() {
        let e = entropy.get(i).copied().unwrap_or(0);
        *p = hashmix(e, &mut hash_const);
    }
    for i_src in 0..4 {
        for i_dst in 0..4 {
            if i_src != i_dst {
                let h = hashmix(pool[i_src], &mut hash_const);
                pool[i_dst] = mix(pool[i_dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(4) {
        for p in pool.iter_mut() {
            let h = hashmix(e, &mut hash_const);
            *p = mix(*p, h);
        }
    }
    let mut hc = INIT_B;
    let words32: Vec<u32> = (0..n_words * 2)
        .map(|i| {
            let mut v = pool[i % 4] ^ hc;
            hc = hc.wrapping_mul(MULT_B);
            v = v.wrapping_mul(hc);
            v ^ (v >> XSHIFT)
        })
        .collect();
    words32
        .chunks(2)
        .map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32))
        .collect()
}

/// numpy's PCG64 bit generator (`pcg_setseq_128_xsl_rr_64`), with its buffered 32-bit draws.
struct Pcg64 {
    state: u128,
    inc: u128,
    buffered: Option<u32>,
}

const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) + 4_865_540_595_714_422_341u128;

impl Pcg64 {
    fn from_seed(seed: u64) -> Self {
        let v = seed_sequence_u64(seed, 4);
        let initstate = (u128::from(v[0]) << 64) | u128::from(v[1]);
        let initseq = (u128::from(v[2]) << 64) | u128::from(v[3]);
        let mut g = Pcg64 {
            state: 0,
            inc: (initseq << 1) | 1,
            buffered: None,
        };
        g.step();
        g.state = g.state.wrapping_add(initstate);
        g.step();
        g
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let xored = ((s >> 64) as u64) ^ (s as u64);
        xored.rotate_right((s >> 122) as u32)
    }

    fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.buffered.take() {
            return v;
        }
        let n = self.next_u64();
        self.buffered = Some((n >> 32) as u32);
        (n & 0xffff_ffff) as u32
    }

    /// numpy `random_interval(max)`: uniform in [0, max] by masked rejection.
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for s in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> s;
        }
        if max <= 0xffff_ffff {
            loop {
                let v = u64::from(self.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

/// `numpy.random.default_rng(seed).permutation(n)` (what `Dataset.shuffle(seed=…)` applies).
pub fn numpy_permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut g = Pcg64::from_seed(seed);
    let mut x: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = g.interval(i as u64) as usize;
        x.swap(i, j);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_sequence() {
        // std::mt19937 default seed 5489: the 10000th output is 4123659995 (C++ standard).
        let mut g = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = g.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn randperm_matches_torch() {
        // torch 2.11: g = torch.Generator(); g.manual_seed(s); torch.randperm(n, generator=g)
        assert_eq!(
            torch_randperm(10, 0),
            vec![4, 1, 7, 5, 3, 9, 0, 8, 6, 2],
            "seed 0"
        );
        assert_eq!(
            torch_randperm(1000, 7)[..10],
            [615, 284, 599, 580, 347, 92, 383, 891, 452, 41]
        );
        assert_eq!(
            torch_randperm(10, 42),
            vec![2, 6, 1, 8, 4, 5, 0, 9, 3, 7],
            "seed 42"
        );
    }

    #[test]
    fn numpy_permutation_matches_numpy() {
        // numpy 2.x: np.random.default_rng(s).permutation(n)
        assert_eq!(
            numpy_permutation(10, 42),
            vec![5, 6, 0, 7, 3, 2, 4, 9, 1, 8]
        );
        assert_eq!(numpy_permutation(10, 0), vec![4, 6, 2, 7, 3, 5, 9, 0, 8, 1]);
        assert_eq!(
            numpy_permutation(1000, 7)[..10],
            [816, 923, 151, 900, 213, 100, 851, 503, 643, 172]
        );
        // a seed wider than 32 bits enters SeedSequence as two words
        assert_eq!(
            numpy_permutation(1000, (1 << 40) + 3)[..10],
            [517, 234, 394, 267, 297, 527, 685, 249, 684, 199]
        );
    }
}
