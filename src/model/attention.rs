//! Tiled, memory-efficient attention for the CPU (flash-attention style) with its own backward.
//!
//! Hand-written because candle's CPU attention builds the full [heads, T, T] score matrix
//! (quadratic memory, slow at long context) and its fused softmax passes no gradient.
//! Scores are computed one key block at a time with an online softmax; work is split over
//! (kv head, query block) tasks with rayon; masks are per-query key ranges ([`AttnMask`]).

use super::mask::AttnMask;
use rayon::prelude::*;

/// Keys per block: the score row for one query and one key block lives in registers.
const BK: usize = 64;
/// Queries per task.
const BQ: usize = 32;

/// Dispatches a head-size-generic task to its compiled instance.
macro_rules! by_head_dim {
    ($d:expr, $f:ident, $($arg:expr),*) => {
        match $d {
            16 => $f::<16>($($arg),*),
            32 => $f::<32>($($arg),*),
            64 => $f::<64>($($arg),*),
            80 => $f::<80>($($arg),*),
            96 => $f::<96>($($arg),*),
            128 => $f::<128>($($arg),*),
            256 => $f::<256>($($arg),*),
            d => panic!("head dimension {d} is not supported"),
        }
    };
}

/// Head layout of an attention call. `n_heads` must be a multiple of `n_kv_heads` (GQA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
}

impl AttnShape {
    fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
}

/// Inputs of one attention call, token-major: `q` is [nq, n_heads, head_dim], `k` and `v`
/// are [nk, n_kv_heads, head_dim] with nk ≥ `mask.max_key()`; row i of `q` sees the keys of
/// `mask.range(i)`.
pub struct AttnInputs<'a> {
    /// Queries, [nq, n_heads, head_dim].
    pub q: &'a [f32],
    /// Keys, [nk, n_kv_heads, head_dim].
    pub k: &'a [f32],
    /// Values, [nk, n_kv_heads, head_dim].
    pub v: &'a [f32],
    /// Which keys each query row sees, and its score scales.
    pub mask: &'a AttnMask,
    /// Head layout.
    pub shape: AttnShape,
    /// Per kv head, a further factor on the scores that the mask scales
    /// ([`AttnMask::layer_key_scale`] of this call's layer; empty: 1).
    pub head_scale: &'a [f32],
}

impl AttnInputs<'_> {
    fn nq(&self) -> usize {
        self.mask.len()
    }
    fn q_row(&self, i: usize, h: usize) -> &[f32] {
        let d = self.shape.head_dim;
        let o = (i * self.shape.n_heads + h) * d;
        &self.q[o..o + d]
    }
    fn kv_off(&self, j: usize, kvh: usize) -> usize {
        (j * self.shape.n_kv_heads + kvh) * self.shape.head_dim
    }
    /// Copies key block `[j0, j0 + len)` of head `kvh` transposed into `dst` as [head_dim, BK].
    fn transpose_block(&self, src: &[f32], j0: usize, len: usize, kvh: usize, dst: &mut [f32]) {
        let d = self.shape.head_dim;
        for jj in 0..len {
            let o = self.kv_off(j0 + jj, kvh);
            for (dd, &x) in src[o..o + d].iter().enumerate() {
                dst[dd * BK + jj] = x;
            }
        }
    }
    /// The key range of every query row of `[q0, q1)` together (shared prefixes included).
    fn mask_span(&self, q0: usize, q1: usize) -> (usize, usize) {
        let lo = (q0..q1).map(|i| self.mask.span(i).0).min().unwrap();
        let hi = (q0..q1).map(|i| self.mask.span(i).1).max().unwrap();
        (lo, hi)
    }
    /// The rows of the forward task (kv head `kvh`, queries `[q0, q1)`) and the key range it
    /// reads: the rows' mask span clipped to `keys`.
    fn forward_task_span(
        &self,
        kvh: usize,
        q0: usize,
        q1: usize,
        keys: (usize, usize),
    ) -> (Vec<(usize, usize)>, usize, usize) {
        let (lo, hi) = self.mask_span(q0, q1);
        (task_rows(self.shape, kvh, q0, q1), lo.max(keys.0), hi.min(keys.1))
    }
    /// Sets to −∞ the scores of query row `i` (against the key block at `j0` of length `len`,
    /// BK slots) that the row may not see, and the slots past `len`. Blocks wholly visible to
    /// the row (most of them) are left as they are, so that the max, exp and sum after it run
    /// over plain 16-lane arrays: vectorised, unlike a per-key branch.
    #[inline(always)]
    fn mask_scores(&self, i: usize, kvh: usize, j0: usize, len: usize, s: &mut [f32]) {
        let (lo, hi) = self.mask.range(i);
        let (a, b) = self.mask.extra(i);
        let visible = len == BK && ((j0 >= lo && j0 + BK <= hi) || (j0 >= a && j0 + BK <= b));
        if !visible {
            for (j, x) in s.iter_mut().enumerate() {
                let key = j0 + j;
                if !((key >= lo && key < hi) || (key >= a && key < b)) || j >= len {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
        self.scale_keys(i, kvh, j0, len, s);
    }
    /// The entries `[from, to)` of row `i`'s block (keys from `j0`, `len` of them) that the
    /// mask scales for kv head `kvh`, and their factor: the row's
    /// ([`AttnMask::with_key_scale`]) times the head's ([`AttnInputs::head_scale`]).
    #[inline(always)]
    fn scaled_entries(&self, i: usize, kvh: usize, j0: usize, len: usize) -> Option<(usize, usize, f32)> {
        let (c, e, f) = self.mask.key_scale(i)?;
        let (from, to) = (c.max(j0), e.min(j0 + len));
        let head = self.head_scale.get(kvh).copied().unwrap_or(1.0);
        (from < to).then_some((from - j0, to - j0, f * head))
    }
    /// Multiplies the entries of row `i`'s block that the mask scales by their factor
    /// ([`AttnInputs::scaled_entries`]): on the scores in the forward, and on dS in the
    /// backward (d score / d (q·k) is the factor there).
    #[inline(always)]
    fn scale_keys(&self, i: usize, kvh: usize, j0: usize, len: usize, s: &mut [f32]) {
        if let Some((from, to, f)) = self.scaled_entries(i, kvh, j0, len) {
            s[from..to].iter_mut().for_each(|x| *x *= f);
        }
    }
    fn check(&self) {
        let s = self.shape;
        assert!(
            s.n_heads.is_multiple_of(s.n_kv_heads),
            "heads must be a multiple of kv heads"
        );
        assert_eq!(
            self.q.len(),
            self.nq() * s.n_heads * s.head_dim,
            "q has the wrong length"
        );
        let nk = self.k.len() / (s.n_kv_heads * s.head_dim);
        assert!(self.mask.max_key() <= nk, "mask reads past the end of the keys");
        assert_eq!(self.k.len(), self.v.len(), "k and v differ in length");
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..16 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Query rows of one task: (row index into the task's buffers, query i, head h).
fn task_rows(shape: AttnShape, kvh: usize, q0: usize, q1: usize) -> Vec<(usize, usize)> {
    let g = shape.group();
    (0..g).flat_map(|gh| (q0..q1).map(move |i| (i, kvh * g + gh))).collect()
}

/// exp(x) for f32 by range reduction and a degree-6 polynomial (Cephes `expf` constants,
/// relative error ~2e-7): written branch-free so loops over it vectorize, unlike `f32::exp`.
/// Returns 0 for x < -87 (including -inf).
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * std::f32::consts::LOG2_E + 0.5).floor();
    // Horner steps as fused multiply-adds: LLVM does not contract `a * b + c` by itself, and
    // separate multiplies and adds made this polynomial most of the softmax's time.
    let r = n.mul_add(2.121_944_4e-4, n.mul_add(-0.693_359_4, xc));
    let p = [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1]
        .into_iter()
        .fold(1.987_569_1e-4_f32, |p, c| p.mul_add(r, c));
    // 2^n without a float-to-int conversion (whose saturating `as` semantics kept LLVM from
    // vectorizing loops over this function): n is an integer in [-125, 127] after the clamp,
    // so n + 2^23 + 127 holds 127 + n in its low mantissa bits, which the shift moves into
    // the exponent field.
    let pow2n = f32::from_bits((n + 8_388_735.0).to_bits() << 23);
    let y = ((p * r).mul_add(r, r) + 1.0) * pow2n;
    if x < -87.0 { 0.0 } else { y }
}

/// The largest of a block's scores (16 lanes, then across lanes).
#[inline(always)]
fn lanes_max(v: &[f32; BK]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 16];
    for c in v.chunks_exact(16) {
        for x in 0..16 {
            m[x] = if c[x] > m[x] { c[x] } else { m[x] };
        }
    }
    m.into_iter().fold(f32::NEG_INFINITY, f32::max)
}

/// The sum of a block's probabilities (16 lanes, then across lanes).
#[inline(always)]
fn lanes_sum(v: &[f32; BK]) -> f32 {
    let mut a = [0f32; 16];
    for c in v.chunks_exact(16) {
        for x in 0..16 {
            a[x] += c[x];
        }
    }
    a.iter().sum()
}

/// Query rows handled together by the register kernels: the key block is loaded once for all
/// of them.
const R: usize = 4;

/// Running state of R query rows: max, sum and output accumulators (online softmax).
struct RowState<const D: usize> {
    m: [f32; R],
    l: [f32; R],
    acc: [[f32; D]; R],
}

/// One (kv head, query block) task of the forward pass on the register kernel, for head size
/// `D`: attention of the query rows `[q0, q1)` of kv head `kvh`'s group over the keys of
/// `keys` (a chunk of the context): the rows' outputs normalised over those keys, and their
/// log-sum-exps (−∞ and a zero output for a row that sees none of them).
// Indexed loops over the R query rows and 16-lane strips keep the accumulators in registers.
#[allow(clippy::needless_range_loop)]
fn forward_task<const D: usize>(
    a: &AttnInputs,
    kvh: usize,
    q0: usize,
    q1: usize,
    keys: (usize, usize),
) -> (Vec<(usize, usize)>, Vec<f32>, Vec<f32>) {
    let scale = 1.0 / (D as f32).sqrt();
    let (rows, lo, hi) = a.forward_task_span(kvh, q0, q1, keys);
    let mut out = vec![0f32; rows.len() * D];
    let mut lse = vec![0f32; rows.len()];
    let kv_row = a.shape.n_kv_heads * D;
    // Chunks of R rows; the last chunk is padded by repeating its final row.
    let chunks: Vec<[usize; R]> = rows
        .chunks(R)
        .enumerate()
        .map(|(c, ch)| std::array::from_fn(|r| c * R + r.min(ch.len() - 1)))
        .collect();
    let qs: Vec<[[f32; D]; R]> = chunks
        .iter()
        .map(|idx| {
            std::array::from_fn(|r| {
                let (i, h) = rows[idx[r]];
                std::array::from_fn(|d| a.q_row(i, h)[d] * scale)
            })
        })
        .collect();
    let mut states: Vec<RowState<D>> = chunks
        .iter()
        .map(|_| RowState {
            m: [f32::NEG_INFINITY; R],
            l: [0.0; R],
            acc: [[0.0; D]; R],
        })
        .collect();
    let mut j0 = lo;
    while j0 < hi {
        let len = BK.min(hi - j0);
        let k_blk = &a.k[a.kv_off(j0, kvh)..];
        for ((idx, q), st) in chunks.iter().zip(&qs).zip(states.iter_mut()) {
            if idx.iter().all(|&row| !a.mask.touches(rows[row].0, j0, j0 + len)) {
                continue;
            }
            let mut s = [[0f32; BK]; R];
            scores_dot(q, k_blk, kv_row, len, &mut s);
            let mut p = [[0f32; BK]; R];
            for r in 0..R {
                a.mask_scores(rows[idx[r]].0, kvh, j0, len, &mut s[r]);
                let mx = lanes_max(&s[r]).max(st.m[r]);
                if mx == f32::NEG_INFINITY {
                    continue;
                }
                for j in 0..BK {
                    p[r][j] = fast_exp(s[r][j] - mx);
                }
                let sum = lanes_sum(&p[r]);
                let alpha = fast_exp(st.m[r] - mx);
                st.l[r] = st.l[r] * alpha + sum;
                st.m[r] = mx;
                st.acc[r].iter_mut().for_each(|x| *x *= alpha);
            }
            // P·V in column strips of 16: R × 16 accumulators stay in registers (AVX2 has 16).
            for c in (0..D).step_by(16) {
                let mut acc: [[f32; 16]; R] = std::array::from_fn(|r| st.acc[r][c..c + 16].try_into().unwrap());
                for j in 0..len {
                    let o = a.kv_off(j0 + j, kvh) + c;
                    let vrow: &[f32; 16] = a.v[o..o + 16].try_into().unwrap();
                    for r in 0..R {
                        let pj = p[r][j];
                        for x in 0..16 {
                            acc[r][x] = pj.mul_add(vrow[x], acc[r][x]);
                        }
                    }
                }
                for r in 0..R {
                    st.acc[r][c..c + 16].copy_from_slice(&acc[r]);
                }
            }
        }
        j0 += len;
    }
    for (idx, st) in chunks.iter().zip(&states) {
        for r in 0..R {
            let row = idx[r];
            if st.l[r] == 0.0 {
                lse[row] = f32::NEG_INFINITY;
                continue;
            }
            let inv = 1.0 / st.l[r];
            out[row * D..(row + 1) * D]
                .iter_mut()
                .zip(&st.acc[r])
                .for_each(|(o, x)| *o = x * inv);
            lse[row] = st.m[r] + st.l[r].ln();
        }
    }
    (rows, out, lse)
}

/// Query rows from which a forward task runs on gemm ([`forward_task_gemm`]); fewer rows (a
/// decode step, a short question over a long context) keep the register kernel, for which
/// the gemm's packing costs more than it saves.
const GEMM_MIN_ROWS: usize = 16;

/// Keys per round of [`forward_task_gemm`]: four mask blocks, so that each gemm call is large
/// enough to amortise its packing and the output is rescaled once per four blocks.
const GEMM_KEYS: usize = 4 * BK;

/// [`forward_task`] for many rows (a prefill): per round of [`GEMM_KEYS`] keys, S = Q·Kᵀ and
/// O += P·V by the gemm crate's packed kernel over all of the task's rows at once (K and V
/// read where they lie: the gemm packs them), with the online softmax (max, exp, sum,
/// rescale) per row between the two.
fn forward_task_gemm(
    a: &AttnInputs,
    kvh: usize,
    q0: usize,
    q1: usize,
    keys: (usize, usize),
) -> (Vec<(usize, usize)>, Vec<f32>, Vec<f32>) {
    let d = a.shape.head_dim;
    let (rows, lo, hi) = a.forward_task_span(kvh, q0, q1, keys);
    let n = rows.len();
    let mut q = vec![0f32; n * d];
    a.gather_rows(a.q, &rows, 1.0 / (d as f32).sqrt(), &mut q);
    let mut s = vec![0f32; n * GEMM_KEYS];
    let mut out = vec![0f32; n * d];
    let (mut m, mut l) = (vec![f32::NEG_INFINITY; n], vec![0f32; n]);
    let kv_row = a.shape.n_kv_heads * d;
    let mut j0 = lo;
    while j0 < hi {
        let len = GEMM_KEYS.min(hi - j0);
        if rows.iter().all(|&(i, _)| !a.mask.touches(i, j0, j0 + len)) {
            j0 += len;
            continue;
        }
        // Written, not accumulated: columns past `len` keep old values, which the masking
        // below sets to −∞ like every key the row does not see.
        let k_blk = MatRef::transposed(&a.k[a.kv_off(j0, kvh)..], kv_row);
        gemm_acc(n, len, d, &mut s, GEMM_KEYS, MatRef::rows(&q, d), k_blk, 1.0, false);
        for (r, &(i, _)) in rows.iter().enumerate() {
            let row = &mut s[r * GEMM_KEYS..(r + 1) * GEMM_KEYS];
            let mut mx = m[r];
            for (c, p) in row.as_chunks_mut::<BK>().0.iter_mut().enumerate() {
                a.mask_scores(i, kvh, j0 + c * BK, len.saturating_sub(c * BK).min(BK), p);
                mx = mx.max(lanes_max(p));
            }
            if mx == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            // Exponentials and their sum in one pass over the row (16 partial sums).
            let mut lanes = [0f32; 16];
            for c in row.as_chunks_mut::<16>().0 {
                for x in 0..16 {
                    c[x] = fast_exp(c[x] - mx);
                    lanes[x] += c[x];
                }
            }
            let sum: f32 = lanes.iter().sum();
            if mx > m[r] {
                let alpha = fast_exp(m[r] - mx);
                l[r] *= alpha;
                out[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= alpha);
                m[r] = mx;
            }
            l[r] += sum;
        }
        let v_blk = MatRef::rows(&a.v[a.kv_off(j0, kvh)..], kv_row);
        gemm_acc(n, d, len, &mut out, d, MatRef::rows(&s, GEMM_KEYS), v_blk, 1.0, true);
        j0 += len;
    }
    let mut lse = vec![f32::NEG_INFINITY; n];
    for r in 0..n {
        if l[r] > 0.0 {
            let inv = 1.0 / l[r];
            out[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= inv);
            lse[r] = m[r] + l[r].ln();
        }
    }
    (rows, out, lse)
}

/// Head sizes the kernels are compiled for.
pub const SUPPORTED_HEAD_DIMS: [usize; 7] = [16, 32, 64, 80, 96, 128, 256];

/// Forward attention. Returns the output [nq, n_heads, head_dim] and the log-sum-exp of
/// every (head, query) row, laid out [n_heads, nq] (needed by the backward pass).
/// Panics on a head size outside [`SUPPORTED_HEAD_DIMS`] (configs are validated at load).
pub fn attention_forward(a: &AttnInputs) -> (Vec<f32>, Vec<f32>) {
    a.check();
    let s = a.shape;
    let (nq, d, h) = (a.nq(), s.head_dim, s.n_heads);
    let q_tasks = s.n_kv_heads * nq.div_ceil(BQ);
    let (lo, hi) = if nq == 0 { (0, 0) } else { a.mask_span(0, nq) };
    let splits = key_splits(q_tasks, hi - lo, rayon::current_num_threads());
    let chunk = (hi - lo).div_ceil(splits).next_multiple_of(BK);
    let mut tasks: Vec<(usize, usize, usize)> = (0..s.n_kv_heads)
        .flat_map(|kvh| (0..nq.div_ceil(BQ)).map(move |b| (kvh, b * BQ)))
        .flat_map(|(kvh, q0)| (0..splits).map(move |c| (kvh, q0, lo + c * chunk)))
        .filter(|&(_, _, k0)| k0 < hi.max(lo + 1))
        .collect();
    // Longest first: the pool hands out tasks in chunks, in order, and a causal prompt's last
    // query blocks read the most keys; run last, they left one thread working while the
    // other waited at the barrier (8.6% of a 4096-token attention's time before this order).
    // The order of the results does not matter: they are merged by their rows below.
    tasks.sort_by_key(|&(_, q0, k0)| {
        let (klo, khi) = a.mask_span(q0, (q0 + BQ).min(nq));
        let keys = khi.min(k0 + chunk).saturating_sub(klo.max(k0));
        std::cmp::Reverse(keys * ((q0 + BQ).min(nq) - q0))
    });
    let results = pool_map(&tasks, |&(kvh, q0, k0)| {
        let (q1, keys) = ((q0 + BQ).min(nq), (k0, (k0 + chunk).min(hi)));
        if (q1 - q0) * s.group() >= GEMM_MIN_ROWS {
            forward_task_gemm(a, kvh, q0, q1, keys)
        } else {
            by_head_dim!(d, forward_task, a, kvh, q0, q1, keys)
        }
    });
    // Each task's rows are normalised over its own keys; rows split over several key chunks
    // are merged by their log-sum-exps: out = Σ out_c·e^(lse_c − lse), lse = log Σ e^lse_c.
    let mut out = vec![0f32; nq * h * d];
    let mut lse = vec![f32::NEG_INFINITY; h * nq];
    for (rows, acc, l) in results {
        for (r, &(i, hh)) in rows.iter().enumerate() {
            let (dst, old) = (&mut out[(i * h + hh) * d..(i * h + hh + 1) * d], lse[hh * nq + i]);
            let src = &acc[r * d..(r + 1) * d];
            if old == f32::NEG_INFINITY {
                dst.copy_from_slice(src);
                lse[hh * nq + i] = l[r];
            } else if l[r] != f32::NEG_INFINITY {
                let m = old.max(l[r]);
                let (wa, wb) = ((old - m).exp(), (l[r] - m).exp());
                let inv = 1.0 / (wa + wb);
                dst.iter_mut().zip(src).for_each(|(o, x)| *o = (*o * wa + x * wb) * inv);
                lse[hh * nq + i] = m + (wa + wb).ln();
            }
        }
    }
    (out, lse)
}

/// `f` over `items` on candle's spin-barrier pool, results in order. The forward pass runs
/// there rather than on rayon's pool because the projections around it (candle's and
/// `block_gemv`'s) do: in decode the pool's workers are still spinning from the last
/// projection when attention starts, and a second pool's threads would compete with them for
/// the same cores.
fn pool_map<T: Sync, R: Send + Sync>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let slots: Vec<std::sync::OnceLock<R>> = items.iter().map(|_| std::sync::OnceLock::new()).collect();
    candle_core::utils::barrier_pool().execute_chunked(items.len(), |range| {
        for i in range {
            let _ = slots[i].set(f(&items[i]));
        }
    });
    slots
        .into_iter()
        .map(|s| s.into_inner().expect("every task ran"))
        .collect()
}

/// Into how many key chunks to split each (kv head, query block) task so that `threads`
/// threads have work: only when there are fewer than two tasks per thread (few queries
/// over a long context: a question after composed packets, or decode), and never into
/// chunks under 8 key blocks. 1 = no split.
fn key_splits(tasks: usize, keys: usize, threads: usize) -> usize {
    let wanted = (2 * threads).div_ceil(tasks.max(1));
    wanted.min(keys / (8 * BK)).max(1)
}

/// Per-row inputs of the backward pass shared by its two kinds of tasks.
struct BwdRows<'a> {
    lse: &'a [f32],
    delta: &'a [f32],
    dout: &'a [f32],
}

/// Scores of R query rows against the `len` keys of a block, read where they lie (rows
/// `kv_row` floats apart): one dot product per (row, key). With so few rows a transposed
/// copy of the block, as the gemm path's packing makes, costs more than the products
/// themselves. Runs the AVX2 kernel when the CPU has it (LLVM left the portable loop's
/// fused multiply-adds scalar: 16 `vfmadd..ss` and a serial sum per dot product, half of
/// decode's attention time in `perf annotate`), the portable loop otherwise.
#[inline(always)]
fn scores_dot<const D: usize>(q: &[[f32; D]; R], k: &[f32], kv_row: usize, len: usize, s: &mut [[f32; BK]; R]) {
    assert!(
        len <= BK && (len == 0 || (len - 1) * kv_row + D <= k.len()),
        "key block out of range"
    );
    #[cfg(target_arch = "x86_64")]
    if simd_scores::available() {
        // SAFETY: AVX2 and FMA were detected; the assert above bounds every key row read.
        unsafe { simd_scores::scores(q, k, kv_row, len, s) };
        return;
    }
    scores_portable(q, k, kv_row, len, s);
}

/// [`scores_dot`] in plain Rust: the reference the AVX2 kernel is tested against.
#[inline(always)]
fn scores_portable<const D: usize>(q: &[[f32; D]; R], k: &[f32], kv_row: usize, len: usize, s: &mut [[f32; BK]; R]) {
    for j in 0..len {
        let krow = &k[j * kv_row..j * kv_row + D];
        for r in 0..R {
            s[r][j] = dot(&q[r], krow);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd_scores {
    //! The 4-row score kernel: each key row is loaded once per 8 lanes and multiplied into 4
    //! running sums (one per query row); the 4 sums are reduced together by two rounds of
    //! `hadd` and one cross-lane add, giving the 4 scores of the key in one register.
    //! Measured on Zen 3 (64-key blocks, head size 64): ~15 ns a key for the 4 rows against
    //! ~125 ns for the portable loop; two keys a step (8 independent sums) was no faster.
    use super::{BK, R};
    use std::arch::x86_64::*;

    /// True when the CPU has AVX2 and FMA.
    pub fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// # Safety
    /// AVX2 and FMA must be available; `len <= BK` and every key row `j < len` must have `D`
    /// floats at `k[j * kv_row..]`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // j indexes key rows of `k` and the score columns alike
    pub unsafe fn scores<const D: usize>(
        q: &[[f32; D]; R],
        k: &[f32],
        kv_row: usize,
        len: usize,
        s: &mut [[f32; BK]; R],
    ) {
        const { assert!(R == 4 && D.is_multiple_of(8)) };
        for j in 0..len {
            // SAFETY: the caller guarantees D floats at k[j * kv_row..] for j < len.
            let out = unsafe {
                let kp = k.as_ptr().add(j * kv_row);
                let mut acc = [_mm256_setzero_ps(); R];
                for c in (0..D).step_by(8) {
                    let kc = _mm256_loadu_ps(kp.add(c));
                    for r in 0..R {
                        acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q[r].as_ptr().add(c)), kc, acc[r]);
                    }
                }
                sums4(acc)
            };
            for r in 0..R {
                s[r][j] = out[r];
            }
        }
    }

    /// The horizontal sums of 4 registers: two rounds of `hadd`, then the two halves added.
    #[target_feature(enable = "avx2,fma")]
    fn sums4(a: [__m256; R]) -> [f32; 4] {
        let h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let mut out = [0f32; 4];
        // SAFETY: `out` holds 4 floats.
        unsafe {
            _mm_storeu_ps(
                out.as_mut_ptr(),
                _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)),
            )
        };
        out
    }
}

impl AttnInputs<'_> {
    /// Copies the rows `rows` (query i, head h) of a [nq, n_heads, head_dim] array into `dst`
    /// ([rows.len(), head_dim]), times `scale`.
    fn gather_rows(&self, src: &[f32], rows: &[(usize, usize)], scale: f32, dst: &mut [f32]) {
        let d = self.shape.head_dim;
        for (&(i, h), out) in rows.iter().zip(dst.chunks_exact_mut(d)) {
            let o = (i * self.shape.n_heads + h) * d;
            out.iter_mut().zip(&src[o..o + d]).for_each(|(y, x)| *y = x * scale);
        }
    }

    /// Turns the scores `s` of `rows` against the key block at `j0` of length `len` (row-major,
    /// BK floats a row) into probabilities P (masked keys and columns past `len`: 0), and their
    /// dO·V products `dp` into dS = P ∘ (dP − delta) with respect to the unscaled scores, in
    /// place. Returns the gradient of the loss with respect to the kv head's factor
    /// ([`AttnInputs::head_scale`]) from these entries: Σ dS' · score / head factor over the
    /// scaled ones, dS' the gradient with respect to the scaled score (0 when none is scaled).
    #[allow(clippy::too_many_arguments)]
    fn p_ds(
        &self,
        b: &BwdRows,
        kvh: usize,
        rows: &[(usize, usize)],
        s: &mut [f32],
        dp: &mut [f32],
        j0: usize,
        len: usize,
    ) -> f32 {
        let nq = self.nq();
        let head = self.head_scale.get(kvh).copied().unwrap_or(1.0);
        let mut dhead = 0f32;
        for ((&(i, h), p), ds) in rows.iter().zip(s.chunks_exact_mut(BK)).zip(dp.chunks_exact_mut(BK)) {
            let (l, dl) = (b.lse[h * nq + i], b.delta[h * nq + i]);
            if l == f32::NEG_INFINITY {
                p.fill(0.0);
                ds.fill(0.0);
                continue;
            }
            // Only a row with scaled entries keeps its unscaled scores (for the head factor's
            // gradient) before P overwrites them: unscaled rows do no extra work.
            let entries = self.scaled_entries(i, kvh, j0, len);
            let raw: Option<[f32; BK]> = entries.map(|_| std::array::from_fn(|j| p[j]));
            // Masked scores become −∞, whose exp is 0: the exp runs branch-free over the block.
            self.mask_scores(i, kvh, j0, len, p);
            for (x, d) in p.iter_mut().zip(ds.iter_mut()) {
                *x = fast_exp(*x - l);
                *d = *x * (*d - dl);
            }
            if let (Some((from, to, f)), Some(raw)) = (entries, raw) {
                // d score / d head factor = unscaled score × the row's factor (f / head); masked
                // entries have dS' = 0.
                dhead += (from..to).map(|j| ds[j] * raw[j]).sum::<f32>() * (f / head);
                ds[from..to].iter_mut().for_each(|x| *x *= f);
            }
        }
        dhead
    }
}

/// A row-major matrix view for [`gemm_acc`]: element (r, c) at `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
struct MatRef<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// Rows `rs` floats apart, columns contiguous.
    fn rows(data: &'a [f32], rs: usize) -> Self {
        Self { data, rs, cs: 1 }
    }
    /// The transpose of a matrix stored with rows `ld` floats apart.
    fn transposed(data: &'a [f32], ld: usize) -> Self {
        Self { data, rs: 1, cs: ld }
    }
    /// Panics unless every element of an `rows` × `cols` view lies inside `data`.
    fn check(&self, rows: usize, cols: usize) {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len(),
                "matrix view out of bounds"
            );
        }
    }
}

/// `dst` [m × n, row-major, rows `dst_rs` floats apart] += scale · a [m × k] · b [k × n]
/// (with `acc` false: = instead of +=, the old values never read),
/// single-threaded (the callers are already parallel tasks). The `gemm` crate (candle's own
/// matmul kernel) packs the operands and runs its FMA micro-kernel, which register loops over
/// rows cannot match.
#[allow(clippy::too_many_arguments)]
fn gemm_acc(m: usize, n: usize, k: usize, dst: &mut [f32], dst_rs: usize, a: MatRef, b: MatRef, scale: f32, acc: bool) {
    assert!(
        n <= dst_rs && (m == 0 || (m - 1) * dst_rs + n <= dst.len()),
        "destination out of bounds"
    );
    a.check(m, k);
    b.check(k, n);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: every element gemm reads or writes is inside the slices (checked above), and
    // `dst` does not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            acc,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Query rows handled by one round of gemms in [`dkdv_task`]: enough to amortise the gemm's
/// packing, few enough that the buffers stay in L2.
const GEMM_ROWS: usize = 256;

/// Scratch of the backward tasks for `n` rows: Q (scaled) and dO rows, and the S/P and dP/dS
/// blocks (BK floats a row).
struct BwdScratch {
    q: Vec<f32>,
    dout: Vec<f32>,
    p: Vec<f32>,
    ds: Vec<f32>,
}

impl BwdScratch {
    fn new(n: usize, d: usize) -> Self {
        Self {
            q: vec![0f32; n * d],
            dout: vec![0f32; n * d],
            p: vec![0f32; n * BK],
            ds: vec![0f32; n * BK],
        }
    }

    /// P and dS of the first `n` rows (`rows`, whose Q and dO are already gathered) against
    /// the key block at `j0`: S = Q·Kᵀ and dP = dO·Vᵀ by gemm from the transposed blocks
    /// `kt`, `vt` ([head_dim, BK]), then [`AttnInputs::p_ds`] (whose head-factor gradient it
    /// returns).
    #[allow(clippy::too_many_arguments)]
    fn p_ds(
        &mut self,
        a: &AttnInputs,
        b: &BwdRows,
        kvh: usize,
        rows: &[(usize, usize)],
        kt: &[f32],
        vt: &[f32],
        j0: usize,
        len: usize,
    ) -> f32 {
        let (n, d) = (rows.len(), a.shape.head_dim);
        let (p, ds) = (&mut self.p[..n * BK], &mut self.ds[..n * BK]);
        p.fill(0.0);
        ds.fill(0.0);
        gemm_acc(
            n,
            len,
            d,
            p,
            BK,
            MatRef::rows(&self.q[..n * d], d),
            MatRef::rows(kt, BK),
            1.0,
            true,
        );
        gemm_acc(
            n,
            len,
            d,
            ds,
            BK,
            MatRef::rows(&self.dout[..n * d], d),
            MatRef::rows(vt, BK),
            1.0,
            true,
        );
        a.p_ds(b, kvh, rows, p, ds, j0, len)
    }
}

/// Gradients from one (kv head, key block): dK and dV of its keys ([len, head_dim] each) and
/// the block's share of dQ for every (query, head) row that sees it.
struct KeyBlockGrads {
    dk: Vec<f32>,
    dv: Vec<f32>,
    /// (query, head) of each row of `dq`.
    rows: Vec<(usize, usize)>,
    dq: Vec<f32>,
    /// The block's share of the gradient of the kv head's key factor.
    dhead: f32,
}

/// One (kv head, key block): every query row that sees the block contributes, over chunks of
/// [`GEMM_ROWS`] rows, dV = Pᵀ·dO, dK = dSᵀ·Q and dQ = dS·K·scale (K read in place), so that
/// P and dS are computed once per (row, key) pair.
fn key_block_task(a: &AttnInputs, b: &BwdRows, kvh: usize, j0: usize, len: usize) -> KeyBlockGrads {
    let d = a.shape.head_dim;
    let scale = 1.0 / (d as f32).sqrt();
    let g = a.shape.group();
    let (mut kt, mut vt) = (vec![0f32; d * BK], vec![0f32; d * BK]);
    a.transpose_block(a.k, j0, len, kvh, &mut kt);
    a.transpose_block(a.v, j0, len, kvh, &mut vt);
    let k_blk = MatRef::rows(&a.k[a.kv_off(j0, kvh)..], a.shape.n_kv_heads * d);
    let rows: Vec<(usize, usize)> = (0..a.nq())
        .filter(|&i| a.mask.touches(i, j0, j0 + len))
        .flat_map(|i| (0..g).map(move |gh| (i, kvh * g + gh)))
        .collect();
    let (mut dk, mut dv) = (vec![0f32; len * d], vec![0f32; len * d]);
    let mut dq = vec![0f32; rows.len() * d];
    let mut w = BwdScratch::new(GEMM_ROWS, d);
    let mut dhead = 0f32;
    for (part, dq_part) in rows.chunks(GEMM_ROWS).zip(dq.chunks_mut(GEMM_ROWS * d)) {
        let n = part.len();
        a.gather_rows(a.q, part, scale, &mut w.q);
        a.gather_rows(b.dout, part, 1.0, &mut w.dout);
        dhead += w.p_ds(a, b, kvh, part, &kt, &vt, j0, len);
        // Pᵀ and dSᵀ are read in place: element (key j, row) at row·BK + j.
        let (pt, dst) = (
            MatRef::transposed(&w.p[..n * BK], BK),
            MatRef::transposed(&w.ds[..n * BK], BK),
        );
        gemm_acc(len, d, n, &mut dv, d, pt, MatRef::rows(&w.dout[..n * d], d), 1.0, true);
        gemm_acc(len, d, n, &mut dk, d, dst, MatRef::rows(&w.q[..n * d], d), 1.0, true);
        gemm_acc(
            n,
            d,
            len,
            dq_part,
            d,
            MatRef::rows(&w.ds[..n * BK], BK),
            k_blk,
            scale,
            true,
        );
    }
    KeyBlockGrads {
        dk,
        dv,
        rows,
        dq,
        dhead,
    }
}

/// Key-block tasks run at a time in [`attention_backward`], per thread: bounds the memory
/// held by their dQ shares before they are summed.
const TASKS_PER_THREAD: usize = 8;

/// Gradients of [`attention_forward`]: dq, dk, dv laid out like q, k, v, and the gradient of
/// each kv head's key factor ([`AttnInputs::head_scale`]; zeros where the mask scales nothing).
pub struct AttnGrads {
    /// Gradient of the queries, laid out like `q`.
    pub dq: Vec<f32>,
    /// Gradient of the keys, laid out like `k`.
    pub dk: Vec<f32>,
    /// Gradient of the values, laid out like `v`.
    pub dv: Vec<f32>,
    /// Gradient of each kv head's key factor.
    pub dhead: Vec<f32>,
}

/// Gradients of [`attention_forward`] given its output `o`, row log-sum-exps `lse` and the
/// upstream gradient `dout` (same layout as `o`).
/// Scores are recomputed block by block; memory stays linear in sequence length. The dQ
/// shares of the key blocks are summed in a fixed order, so the result does not depend on
/// the number of threads or their timing.
pub fn attention_backward(a: &AttnInputs, o: &[f32], lse: &[f32], dout: &[f32]) -> AttnGrads {
    a.check();
    let s = a.shape;
    let (nq, d, h) = (a.nq(), s.head_dim, s.n_heads);
    // delta[h][i] = dO_i · O_i
    let mut delta = vec![0f32; h * nq];
    for i in 0..nq {
        for hh in 0..h {
            let off = (i * h + hh) * d;
            delta[hh * nq + i] = dot(&dout[off..off + d], &o[off..off + d]);
        }
    }
    let b = BwdRows {
        lse,
        delta: &delta,
        dout,
    };
    let nk = a.mask.max_key();
    let tasks: Vec<(usize, usize)> = (0..s.n_kv_heads)
        .flat_map(|kvh| (0..nk.div_ceil(BK)).map(move |blk| (kvh, blk * BK)))
        .collect();
    let mut dq = vec![0f32; a.q.len()];
    let mut dk = vec![0f32; a.k.len()];
    let mut dv = vec![0f32; a.v.len()];
    let mut dhead = vec![0f32; s.n_kv_heads];
    for wave in tasks.chunks(TASKS_PER_THREAD * rayon::current_num_threads()) {
        let grads: Vec<_> = wave
            .par_iter()
            .map(|&(kvh, j0)| key_block_task(a, &b, kvh, j0, BK.min(nk - j0)))
            .collect();
        for (&(kvh, j0), t) in wave.iter().zip(grads) {
            dhead[kvh] += t.dhead;
            for jj in 0..t.dk.len() / d {
                let off = a.kv_off(j0 + jj, kvh);
                dk[off..off + d].copy_from_slice(&t.dk[jj * d..(jj + 1) * d]);
                dv[off..off + d].copy_from_slice(&t.dv[jj * d..(jj + 1) * d]);
            }
            for (&(i, hh), share) in t.rows.iter().zip(t.dq.chunks(d)) {
                let row = &mut dq[(i * h + hh) * d..(i * h + hh + 1) * d];
                row.iter_mut().zip(share).for_each(|(x, y)| *x += y);
            }
        }
    }
    AttnGrads { dq, dk, dv, dhead }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::mask::Segment;
    use crate::model::qkv_attention::{FrozenLayer, HeadScaleGrad, QkvAttention};
    use crate::model::rope::RopeTable;
    use candle_core::{D, Device, Tensor, Var};
    use std::sync::{Arc, Mutex};

    /// Deterministic pseudo-random values in [-1, 1) for tests.
    pub(crate) fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The score kernel that runs (AVX2 where present) equals the portable loop, for full
    /// and partial key blocks, two head sizes, keys strided as in a GQA cache.
    #[test]
    fn score_kernel_matches_portable_loop() {
        fn check<const D: usize>() {
            let kv_row = 3 * D;
            let q: [[f32; D]; R] = std::array::from_fn(|r| rand_vec(D, 7 + r as u64).try_into().unwrap());
            let k = rand_vec(BK * kv_row, 11);
            for len in [BK, 37, 1] {
                let (mut fast, mut plain) = ([[0f32; BK]; R], [[0f32; BK]; R]);
                scores_dot(&q, &k[D..], kv_row, len, &mut fast);
                scores_portable(&q, &k[D..], kv_row, len, &mut plain);
                for r in 0..R {
                    for j in 0..BK {
                        assert!(
                            (fast[r][j] - plain[r][j]).abs() < 1e-4,
                            "D {D} len {len} row {r} key {j}"
                        );
                    }
                }
            }
        }
        check::<64>();
        check::<80>();
    }

    /// Dense reference attention in candle ops (differentiable through `ops::softmax`), with
    /// `head` [kv heads] the per-head factors on the mask's scaled scores (layer 0's).
    fn naive(q: &Tensor, k: &Tensor, v: &Tensor, mask: &AttnMask, s: AttnShape, head: &Tensor) -> Tensor {
        let nq = mask.len();
        let nk = k.dim(0).unwrap();
        let mut bias = vec![f32::NEG_INFINITY; nq * nk];
        for i in 0..nq {
            for j in 0..nk {
                if mask.sees(i, j) {
                    bias[i * nk + j] = 0.0;
                }
            }
        }
        let bias = Tensor::from_vec(bias, (nq, nk), &Device::Cpu).unwrap();
        let (mut factor, mut scaled) = (vec![1f32; nq * nk], vec![0f32; nq * nk]);
        for i in 0..nq {
            if let Some((c, e, f)) = mask.key_scale(i) {
                factor[i * nk + c..i * nk + e].fill(f);
                scaled[i * nk + c..i * nk + e].fill(1.0);
            }
        }
        // Scaled entries: (factor − 1) · head factor + 1 = factor · head factor there, 1 elsewhere.
        let factor = Tensor::from_vec(factor, (nq, nk), &Device::Cpu).unwrap();
        let scaled = Tensor::from_vec(scaled, (nq, nk), &Device::Cpu).unwrap();
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        let outs: Vec<Tensor> = (0..s.n_heads)
            .map(|h| {
                let kvh = h / s.group();
                let hf = head.get(kvh).unwrap();
                let factor =
                    ((&factor * &scaled).unwrap().broadcast_mul(&hf).unwrap() + (1.0 - &scaled).unwrap()).unwrap();
                let qh = q.narrow(1, h, 1).unwrap().squeeze(1).unwrap();
                let kh = k.narrow(1, kvh, 1).unwrap().squeeze(1).unwrap();
                let vh = v.narrow(1, kvh, 1).unwrap().squeeze(1).unwrap();
                let sc =
                    (((qh.matmul(&kh.t().unwrap()).unwrap() * scale).unwrap() * &factor).unwrap() + &bias).unwrap();
                let p = candle_nn::ops::softmax(&sc, D::Minus1).unwrap();
                p.matmul(&vh).unwrap().unsqueeze(1).unwrap()
            })
            .collect();
        Tensor::cat(&outs, 1).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        crate::model::tiny::max_abs_diff(a, b).unwrap()
    }

    /// The differentiable attention op (from q|k|v rows plus a bias, at position 0, where the
    /// rotation is the identity; with `n_past` frozen key rows before them) against the dense reference:
    /// forward and the gradient of every q|k|v input.
    fn check(mask: AttnMask, n_past: usize, s: AttnShape) {
        let nq = mask.len();
        let (qd, kvd) = (s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim);
        let dev = Device::Cpu;
        let qkv =
            Var::from_tensor(&Tensor::from_vec(rand_vec(nq * (qd + 2 * kvd), 1), (nq, qd + 2 * kvd), &dev).unwrap())
                .unwrap();
        let (past_k, past_v) = (rand_vec(n_past * kvd, 2), rand_vec(n_past * kvd, 3));
        let r = Tensor::from_vec(rand_vec(nq * qd, 4), (nq, qd), &dev).unwrap();
        let mask = Arc::new(mask);
        let rope = Arc::new(RopeTable::new(&vec![1.0; s.head_dim / 2], &vec![0; nq], false));
        let frozen = (n_past > 0).then(|| FrozenLayer {
            k: [past_k.clone(), vec![0.0; nq * kvd]].concat(),
            v: [past_v.clone(), vec![0.0; nq * kvd]].concat(),
            live: (n_past..n_past + nq).collect(),
        });
        let bias = rand_vec(qd + 2 * kvd, 5);
        let sink: HeadScaleGrad = Arc::new(Mutex::new(vec![0f32; s.n_kv_heads]));
        let fast = qkv
            .apply_op1(
                QkvAttention::new(Some(bias.clone()), rope, mask.clone(), s, None, frozen)
                    .at_layer(0, Some(sink.clone())),
            )
            .unwrap();
        let head = match mask.layer_key_scale(0) {
            [] => vec![1f32; s.n_kv_heads],
            h => h.to_vec(),
        };
        let head = Var::from_tensor(&Tensor::new(head, &dev).unwrap()).unwrap();
        let biased = qkv
            .broadcast_add(&Tensor::from_vec(bias, qd + 2 * kvd, &dev).unwrap())
            .unwrap();
        let part = |from: usize, width: usize, heads: usize| {
            biased
                .narrow(1, from, width)
                .unwrap()
                .reshape((nq, heads, s.head_dim))
                .unwrap()
        };
        let with_past = |past: Vec<f32>, x: Tensor| {
            let past = Tensor::from_vec(past, (n_past, s.n_kv_heads, s.head_dim), &dev).unwrap();
            Tensor::cat(&[past, x], 0).unwrap()
        };
        let k = with_past(past_k, part(qd, kvd, s.n_kv_heads));
        let v = with_past(past_v, part(qd + kvd, kvd, s.n_kv_heads));
        let slow = naive(&part(0, qd, s.n_heads), &k, &v, &mask, s, head.as_tensor())
            .reshape((nq, qd))
            .unwrap();
        assert!(
            max_diff(&fast, &slow) < 1e-5,
            "forward differs by {}",
            max_diff(&fast, &slow)
        );
        let gf = (fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (slow * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (gf.get(&qkv).unwrap(), gs.get(&qkv).unwrap());
        for (name, from, width) in [("q", 0, qd), ("k", qd, kvd), ("v", qd + kvd, kvd)] {
            let (a, b) = (a.narrow(1, from, width).unwrap(), b.narrow(1, from, width).unwrap());
            assert!(max_diff(&a, &b) < 1e-4, "d{name} differs by {}", max_diff(&a, &b));
        }
        if mask.head_key_scale_shape().is_some() {
            let want = gs.get(&head).unwrap().to_vec1::<f32>().unwrap();
            let got = sink.lock().unwrap().clone();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-3 * (1.0 + w.abs()),
                    "head factor gradient {got:?} vs {want:?}"
                );
            }
            assert!(
                want.iter().any(|w| w.abs() > 1e-3),
                "a vacuous head factor gradient {want:?}"
            );
        }
    }

    #[test]
    fn fast_exp_is_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.043;
            let (a, b) = (fast_exp(x), x.exp());
            assert!((a - b).abs() <= 3e-7 * b, "exp({x}): {a} vs {b}");
        }
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp(-100.0), 0.0);
    }

    #[test]
    fn causal_matches_dense_reference_with_gqa() {
        for (n_heads, n_kv_heads, head_dim) in [(4, 2, 16), (9, 3, 64), (14, 2, 64)] {
            let s = AttnShape {
                n_heads,
                n_kv_heads,
                head_dim,
            };
            // 600 rows: several gemm rounds of keys, the last one partial.
            for n in [150, 600] {
                check(AttnMask::causal(0, n), 0, s);
            }
        }
    }

    #[test]
    fn past_keys_and_blocks_match_dense_reference() {
        let s = AttnShape {
            n_heads: 3,
            n_kv_heads: 1,
            head_dim: 16,
        };
        check(AttnMask::causal(70, 5), 70, s);
        // The second set of segments crosses the gemm rounds of keys.
        let (g, i) = (Segment::Global, Segment::Isolated);
        for segs in [[g(10), i(70), i(33), g(20)], [g(30), i(300), i(270), g(40)]] {
            check(AttnMask::segments(0, &segs).unwrap(), 0, s);
        }
    }

    #[test]
    fn few_queries_over_a_long_context_split_over_keys_match_dense_reference() {
        // A question after composed packets and a decode step: few query tasks, so the
        // keys are split into chunks merged by log-sum-exp.
        let s = AttnShape {
            n_heads: 3,
            n_kv_heads: 1,
            head_dim: 32,
        };
        assert!(key_splits(1, 1500, rayon::current_num_threads()) > 1);
        check(AttnMask::causal(2100, 5), 2100, s);
        check(AttnMask::causal(1500, 1), 1500, s);
    }

    /// Four heads over two kv heads, and the student's layout: a preamble (9 rows), two
    /// packets (to row 119), then three question tails that each see the documents and only
    /// themselves (one crosses key blocks, one is a single row).
    fn branches() -> (AttnShape, AttnMask) {
        let s = AttnShape {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 16,
        };
        let segs = [
            Segment::Global(9),
            Segment::Isolated(70),
            Segment::Isolated(40),
            Segment::Branch(37),
            Segment::Branch(1),
            Segment::Branch(75),
        ];
        (s, AttnMask::segments(0, &segs).unwrap())
    }

    #[test]
    fn branches_over_a_shared_prefix_match_dense_reference() {
        let (s, mask) = branches();
        assert!(mask.sees(119 + 37, 0) && mask.sees(119 + 37, 118) && !mask.sees(119 + 37, 119));
        check(mask, 0, s);
    }

    #[test]
    fn scaled_packet_keys_read_by_the_tails_match_dense_reference() {
        // The student of an adapter with a key scale: the tails read the packets' keys (across
        // block edges) at their scores times the scale, the packets and the preamble do not.
        for scale in [0.5, 1.7] {
            let (s, mask) = branches();
            let mask = mask.with_key_scale((9, 119), 119, scale).unwrap();
            assert_eq!(mask.key_scale(118), None);
            assert_eq!(mask.key_scale(119), Some((9, 119, scale)));
            check(mask, 0, s);
        }
    }

    #[test]
    fn per_head_key_factors_and_their_gradient_match_dense_reference() {
        // Learned key scales: each kv head multiplies the tails' scores against the packets by
        // its own factor (on top of the row's scale, here 1 and 0.8); the factors' gradient
        // from the backward equals the dense reference's autograd.
        for row_scale in [1.0, 0.8] {
            let (s, mask) = branches();
            let mask = mask
                .with_key_scale((9, 119), 119, row_scale)
                .unwrap()
                .with_head_key_scale(vec![1.3, 0.6], 2)
                .unwrap();
            assert_eq!(mask.key_scale(118), None);
            assert_eq!(mask.key_scale(119), Some((9, 119, row_scale)));
            check(mask, 0, s);
        }
    }
}
