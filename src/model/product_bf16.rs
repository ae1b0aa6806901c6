//! Prefill products in bf16 on CPUs with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids): `x·Wᵀ`
//! with both operands rounded to bf16 (round to nearest even) and every sum kept in f32, by
//! `vdpbf16ps`, which does two multiply-adds per f32 lane where an FMA does one: on a Zen 4 core
//! it reaches ~1.9× the f32 FMA rate.
//!
//! Hand-written (`std::arch`) because no maintained crate has a CPU bf16 dot-product kernel:
//! the gemm crate's f16 path and candle's bf16 matmul convert to f32 and run the f32 kernel.
//!
//! Layout. The weights [n, k] are packed once, at load, into panels of [`PANEL`] output
//! columns; within a panel, input pair p (inputs 2p, 2p+1) of all the panel's columns lies
//! together, two bf16 per column, as `vdpbf16ps` reads them. Columns past n and the input past
//! an odd k are zero. The activations are rounded to bf16 per call, row-major, so that one
//! 32-bit load is the pair (x[2p], x[2p+1]) that the kernel broadcasts.

use super::product::{Out, on_threads};

/// Output columns of one packed panel: three AVX-512 vectors of f32 sums.
const PANEL: usize = 48;
/// Rows of the activations one kernel call covers (8 × 3 accumulators).
const ROWS: usize = 8;
/// Bytes of rounded activations a thread works through before moving to the next rows: half
/// of the smallest per-core L2 among the CPUs with AVX512-BF16 (1 MB on Zen 4).
const CHUNK_BYTES: usize = 512 << 10;

/// A weight matrix [n, k] packed for [`PackedBf16::product`].
pub struct PackedBf16 {
    /// Panels of `kp` input pairs × [`PANEL`] columns × 2 bf16 (as raw bits).
    data: Vec<u16>,
    n: usize,
    k: usize,
}

/// bf16 bits of `x`, rounded to nearest even (the conversion `vcvtne2ps2bf16` does).
fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

impl PackedBf16 {
    /// True when this CPU runs the kernel (AVX512-F and AVX512-BF16).
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Packs the row-major matrix `w` [n, k], each element rounded to bf16. Panics if `w` is
    /// not n·k long.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weights are not [n, k]");
        let kp = k.div_ceil(2);
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0u16; panels * kp * PANEL * 2];
        for (j, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
            let (panel, col) = (j / PANEL, j % PANEL);
            let base = panel * kp * PANEL * 2 + col * 2;
            for (i, &x) in row.iter().enumerate() {
                data[base + (i / 2) * PANEL * 2 + i % 2] = bf16_bits(x);
            }
        }
        Self { data, n, k }
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inputs.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `x·Wᵀ` for row-major `x` [m, k]: row-major [m, n] in f32, on up to `threads` threads
    /// (whole panels each). Every product of a bf16-rounded input and weight is exact in f32;
    /// only the order of the f32 sums differs from a plain dot product. Panics if `x` is not
    /// m·k long or the CPU lacks the instructions ([`PackedBf16::available`]).
    pub fn product(&self, x: &[f32], m: usize, threads: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k, "activations are not [m, k]");
        assert!(Self::available(), "this CPU has no AVX512-BF16");
        let n = self.n;
        if m == 0 || n == 0 {
            return Vec::new();
        }
        let kp = self.k.div_ceil(2);
        let a = round_rows(x, m, self.k);
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        let dst = Out(out.as_mut_ptr());
        let panels = n.div_ceil(PANEL);
        let threads = threads.clamp(1, panels);
        // Rows in chunks whose rounded activations stay in a core's L2 while the thread's
        // panels pass over them (one pass over all rows per panel streams a long prompt's
        // activations from memory once per panel): Qwen2.5's MLP products at 4,096 tokens
        // ran 5-30% faster so, and those at 512 the same (`cargo bench --bench kernels` with
        // 4,096-token shapes, two alternations, Zen 4, 2026-12-04).
        let chunk = (CHUNK_BYTES / (kp * 4).max(1)).max(ROWS) / ROWS * ROWS;
        let run = |t: usize| {
            for c0 in (0..m).step_by(chunk) {
                for panel in panels * t / threads..panels * (t + 1) / threads {
                    let b = &self.data[panel * kp * PANEL * 2..(panel + 1) * kp * PANEL * 2];
                    let cols = (n - panel * PANEL).min(PANEL);
                    for r0 in (c0..m.min(c0 + chunk)).step_by(ROWS) {
                        let rows = (m - r0).min(ROWS);
                        let a = &a[r0 * kp..(r0 + rows) * kp];
                        // SAFETY: `available` was asserted; `a` holds `rows` rows of `kp` pairs,
                        // `b` one panel of `kp` pairs; this thread alone writes columns
                        // panel·PANEL .. +cols of rows r0 .. r0+rows of `out`'s m·n capacity.
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            tile(a, rows, kp, b, dst.at(r0 * n + panel * PANEL), n, cols)
                        };
                    }
                }
            }
        };
        on_threads(threads, run);
        // SAFETY: the panels together cover columns 0..n of every row.
        unsafe { out.set_len(m * n) };
        out
    }
}

/// `x` [m, k] rounded to bf16, as one u32 per input pair (x[2p] in the low half), rows of
/// k.div_ceil(2) pairs; an odd k's last pair has a zero high half.
fn round_rows(x: &[f32], m: usize, k: usize) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let mut a = vec![0u32; m * kp];
    for (row, dst) in x.chunks_exact(k.max(1)).take(m).zip(a.chunks_exact_mut(kp.max(1))) {
        for i in round_row_prefix(row, dst)..k {
            dst[i / 2] |= (bf16_bits(row[i]) as u32) << (16 * (i % 2));
        }
    }
    a
}

/// Rounds the leading multiple of 32 elements of `row` into `dst` pairs; returns how many (the
/// caller rounds the rest). Only called once [`PackedBf16::available`] holds.
fn round_row_prefix(row: &[f32], dst: &mut [u32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `product` asserted the CPU has AVX512-F and AVX512-BF16.
    return unsafe { round_row_simd(row, dst) };
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// [`round_row_prefix`] with `vcvtne2ps2bf16`, 32 elements a step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
fn round_row_simd(row: &[f32], dst: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    let whole = row.len() / 32 * 32;
    for i in (0..whole).step_by(32) {
        // SAFETY: i + 32 ≤ row.len() and (i + 32) / 2 ≤ dst.len() (dst holds row.len() / 2
        // pairs or more).
        unsafe {
            let lo = _mm512_loadu_ps(row.as_ptr().add(i));
            let hi = _mm512_loadu_ps(row.as_ptr().add(i + 16));
            let bf = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(dst.as_mut_ptr().add(i / 2).cast(), bf);
        }
    }
    whole
}

/// Rows `rows` (≤ [`ROWS`]) of `a` times one panel `b`, written to `c` (row stride `ldc`),
/// columns 0..cols. Dispatches to the kernel compiled for that many rows.
///
/// # Safety
/// The CPU has AVX512-F and AVX512-BF16; `c` is valid for writes of `rows` rows of `cols`
/// columns at stride `ldc`.
#[cfg(target_arch = "x86_64")]
unsafe fn tile(a: &[u32], rows: usize, kp: usize, b: &[u16], c: *mut f32, ldc: usize, cols: usize) {
    // SAFETY: as this function's own contract.
    unsafe {
        match rows {
            8 => tile_rows::<8>(a, kp, b, c, ldc, cols),
            7 => tile_rows::<7>(a, kp, b, c, ldc, cols),
            6 => tile_rows::<6>(a, kp, b, c, ldc, cols),
            5 => tile_rows::<5>(a, kp, b, c, ldc, cols),
            4 => tile_rows::<4>(a, kp, b, c, ldc, cols),
            3 => tile_rows::<3>(a, kp, b, c, ldc, cols),
            2 => tile_rows::<2>(a, kp, b, c, ldc, cols),
            _ => tile_rows::<1>(a, kp, b, c, ldc, cols),
        }
    }
}

/// The same 512 bits as 32 bf16 (an integer vector from a load or broadcast).
#[cfg(target_arch = "x86_64")]
fn bh(v: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512bh {
    // SAFETY: both are plain 512-bit vectors; every bit pattern is a valid value of each.
    unsafe { std::mem::transmute::<std::arch::x86_64::__m512i, std::arch::x86_64::__m512bh>(v) }
}

/// The kernel: R rows × [`PANEL`] columns of sums in 3·R vector registers over all `kp`
/// input pairs, each step one broadcast pair per row against three vectors of the panel.
///
/// # Safety
/// As [`tile`], with `a` holding R rows of `kp` pairs and `b` one panel of `kp` pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_rows<const R: usize>(a: &[u32], kp: usize, b: &[u16], c: *mut f32, ldc: usize, cols: usize) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= R * kp && b.len() >= kp * PANEL * 2);
    let mut acc = [[_mm512_setzero_ps(); 3]; R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for p in 0..kp {
        // SAFETY: pair p of the panel is PANEL·2 bf16 at p·PANEL·2 < b.len(), and pair p of row
        // r is at r·kp + p < a.len(); transmutes are between 512-bit vector types.
        unsafe {
            let w = bp.add(p * PANEL * 2);
            let w = [0, 32, 64].map(|at| bh(_mm512_loadu_si512(w.add(at).cast())));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = bh(_mm512_set1_epi32(*ap.add(r * kp + p) as i32));
                for (s, w) in acc.iter_mut().zip(w) {
                    *s = _mm512_dpbf16_ps(*s, x, w);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, s) in acc.iter().enumerate() {
            let col = v * 16;
            if col >= cols {
                break;
            }
            // SAFETY: row r, columns col .. col + min(16, cols − col) are inside `c`'s block.
            unsafe {
                let dst = c.add(r * ldc + col);
                if cols - col >= 16 {
                    _mm512_storeu_ps(dst, *s);
                } else {
                    _mm512_mask_storeu_ps(dst, (1u16 << (cols - col)) - 1, *s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attention::tests::rand_vec;

    /// bf16-rounded value of `x`, as f64.
    fn r(x: f32) -> f64 {
        half::bf16::from_f32(x).to_f64()
    }

    #[test]
    fn bf16_products_are_the_rounded_operands_products_for_any_shape_and_thread_count() {
        if !PackedBf16::available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (the f32 path serves every call)");
            return;
        }
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 33, 50),
            (9, 64, 48),
            (17, 100, 97),
            (3, 2, 200),
            (40, 896, 130),
        ] {
            let (x, w) = (rand_vec(m * k, 1), rand_vec(n * k, 2));
            let packed = PackedBf16::pack(&w, n, k);
            let want: Vec<f64> = (0..m * n)
                .map(|i| (0..k).map(|p| r(x[i / n * k + p]) * r(w[i % n * k + p])).sum())
                .collect();
            let mag: Vec<f64> = (0..m * n)
                .map(|i| (0..k).map(|p| (r(x[i / n * k + p]) * r(w[i % n * k + p])).abs()).sum())
                .collect();
            for threads in [1, 2, 5] {
                let got = packed.product(&x, m, threads);
                assert_eq!(got.len(), m * n);
                for ((g, w), s) in got.iter().zip(&want).zip(&mag) {
                    // Only the f32 sums round: k terms of at most `s` in all.
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * (k as f64) * s + 1e-30,
                        "{m}x{k}x{n}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even_in_both_operands() {
        if !PackedBf16::available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        // 1 + 2^-8 lies halfway between two bf16 values: it rounds to even (1.0); 1 + 3·2^-8
        // rounds up to 1 + 2^-6. Both paths (the SIMD one for 32 elements, the scalar tail)
        // must agree with the packed weights' rounding.
        let halfway = 1.0 + 2f32.powi(-8);
        let up = 1.0 + 3.0 * 2f32.powi(-8);
        for k in [32, 33] {
            let x: Vec<f32> = (0..k).map(|i| if i % 2 == 0 { halfway } else { up }).collect();
            let ones = vec![1.0f32; k];
            let got = PackedBf16::pack(&ones, 1, k).product(&x, 1, 1)[0];
            let want: f32 = (0..k).map(|i| if i % 2 == 0 { 1.0 } else { 1.0 + 2f32.powi(-6) }).sum();
            assert_eq!(got, want, "k = {k}");
            let got = PackedBf16::pack(&x, 1, k).product(&ones, 1, 1)[0];
            assert_eq!(got, want, "weights, k = {k}");
        }
    }
}
