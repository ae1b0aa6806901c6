//! A packed f32 matrix product for AVX-512 machines, single-threaded (`product` splits the
//! output's columns among the threads and calls this once per thread).
//!
//! Why hand-written: on a 2-core AVX-512 Xeon the gemm crate's AVX-512 micro-kernels reach
//! 38-65% of the FMA peak on the models' projection shapes, where MKL reaches 72-78%
//! (`docs/results/issue17/peers-2026-12-03.md`); on AVX2 machines the crate is level with MKL and
//! stays in use. The layout is the classic one (Goto / BLIS): the left operand is packed in
//! panels of `MR` rows and the right one in panels of `NR` columns, both `KC` deep, so that the
//! micro-kernel reads each operand contiguously: one `MR × KC` panel of the left stays in L1
//! while it sweeps the `KC × NC` block of the right held in L2. The micro-kernel keeps a
//! `12 × 32` tile of the output in 24 of the 32 vector registers: per step of k, two vector
//! loads of the right, 12 broadcasts of the left and 24 FMAs.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of the output tile (broadcast from the packed left operand).
const MR: usize = 12;
/// Columns of the output tile: two 16-lane vectors.
const NR: usize = 32;
/// Depth of one packed block.
const KC: usize = 256;
/// Columns of the right operand packed at once (`KC × NC` floats = 512 KiB, within L2).
const NC: usize = 512;

/// Whether this CPU runs the kernel (AVX-512 F); `std` caches the detection.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A matrix operand in memory: element (i, j) at `ptr[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct Strided {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

thread_local! {
    /// This thread's packing buffers (left, right), reused across calls: a prefill calls the
    /// product once per projection and layer, and fresh buffers would be zeroed pages each time.
    static BUFFERS: RefCell<(AlignedBuf, AlignedBuf)> =
        const { RefCell::new((AlignedBuf::new(), AlignedBuf::new())) };
}

/// A growable f32 buffer whose usable part starts on a 64-byte boundary (a cache line, and one
/// AVX-512 vector), so that the micro-kernel's vector loads never straddle two lines.
struct AlignedBuf(Vec<f32>);

impl AlignedBuf {
    const fn new() -> Self {
        Self(Vec::new())
    }

    /// A 64-byte-aligned slice of at least `len` floats (contents unspecified).
    fn get(&mut self, len: usize) -> &mut [f32] {
        if self.0.len() < len + 16 {
            self.0 = vec![0.0; len + 16];
        }
        let skip = self.0.as_ptr().align_offset(64).min(15);
        &mut self.0[skip..skip + len]
    }
}

/// `c = a·b` for `a` [m, k], `b` [k, n] (any strides) into `c` with row stride `ldc`, on this
/// thread. Every element of `c`'s m × n part is written, none read, so `c` may be uninitialised.
///
/// # Safety
/// `available()` must be true; `a`, `b` must be readable at every (i, p) / (p, j) in range and
/// `c` writable at `c + i * ldc + j` for every i < m, j < n; m, n, k > 0.
#[cfg(target_arch = "x86_64")]
pub unsafe fn gemm(m: usize, n: usize, k: usize, a: Strided, b: Strided, c: *mut f32, ldc: usize) {
    BUFFERS.with_borrow_mut(|(abuf, bbuf)| {
        let m_panels = m.div_ceil(MR);
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let apack = abuf.get(m_panels * MR * kc);
            // SAFETY: AVX-512 F is available and rows 0..m, columns p0..p0+kc of `a` are
            // readable (the caller's contract).
            unsafe { pack(apack, a, m, p0, kc, MR) };
            for j0 in (0..n).step_by(NC) {
                let nc = NC.min(n - j0);
                let bt = Strided {
                    ptr: b.ptr,
                    rs: b.cs,
                    cs: b.rs,
                };
                let bpack = bbuf.get(nc.div_ceil(NR) * NR * kc);
                // SAFETY: AVX-512 F; bᵀ's rows j0..j0+nc, columns p0..p0+kc are b's (p, j) in
                // range.
                unsafe { pack(bpack, shifted(bt, j0), nc, p0, kc, NR) };
                for (ip, apanel) in apack.chunks_exact(MR * kc).enumerate() {
                    let i0 = ip * MR;
                    for (jp, bpanel) in bpack.chunks_exact(NR * kc).enumerate() {
                        let j = j0 + jp * NR;
                        // SAFETY: AVX-512 F is available; the tile's rows i0.. and columns j..
                        // are clipped to m and n, inside `c` (the caller's contract).
                        unsafe {
                            kernel(
                                kc,
                                apanel.as_ptr(),
                                bpanel.as_ptr(),
                                c.add(i0 * ldc + j),
                                ldc,
                                MR.min(m - i0),
                                NR.min(n - j),
                                p0 > 0,
                            )
                        };
                    }
                }
            }
        }
    })
}

/// `x` with its first `rows` rows skipped.
fn shifted(x: Strided, rows: usize) -> Strided {
    Strided {
        ptr: x.ptr.wrapping_add(rows * x.rs),
        ..x
    }
}

/// Packs rows 0..rows, columns p0..p0+kc of `x` into panels of `width` rows: panel r holds
/// element (r·width + i, p0 + p) at `dst[r·width·kc + p·width + i]`, rows past `rows` zero.
/// Three ways, by layout: rows adjacent in memory (`rs == 1`: each step is one copy), columns
/// adjacent (`cs == 1`, the transposition that both operands of `x·Wᵀ` need: 16 × 16 blocks
/// turned in registers), or neither (element by element).
///
/// # Safety
/// AVX-512 F; `x` must be readable at every (i, p0 + p) for i < rows, p < kc; `width` ≤ 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack(dst: &mut [f32], x: Strided, rows: usize, p0: usize, kc: usize, width: usize) {
    for (r, panel) in dst.chunks_exact_mut(width * kc).enumerate() {
        let i0 = r * width;
        let live = width.min(rows - i0);
        let origin = x.ptr.wrapping_add(i0 * x.rs + p0 * x.cs);
        if x.cs == 1 && x.rs != 1 {
            // SAFETY: the panel's rows i0..i0+live, columns p0..p0+kc are readable (caller).
            unsafe { pack_transposed(panel, origin, x.rs, live, kc, width) };
            continue;
        }
        for (p, step) in panel.chunks_exact_mut(width).enumerate() {
            let src = origin.wrapping_add(p * x.cs);
            if x.rs == 1 {
                // SAFETY: elements (i0..i0+live, p0 + p) are adjacent and readable (caller).
                step[..live].copy_from_slice(unsafe { std::slice::from_raw_parts(src, live) });
            } else {
                for (i, d) in step[..live].iter_mut().enumerate() {
                    // SAFETY: (i0 + i, p0 + p) is in range (the caller's contract).
                    *d = unsafe { *src.add(i * x.rs) };
                }
            }
            step[live..].fill(0.0);
        }
    }
}

/// One panel of `pack` from rows that are contiguous along p (`src[i·rs + p]`, i < live):
/// 16 rows × 16 steps at a time are loaded, transposed in registers and stored as 16 steps.
///
/// # Safety
/// AVX-512 F; `src` readable at `i·rs + p` for i < live, p < kc; `panel` holds `kc · width`
/// floats; live ≤ width ≤ 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_transposed(panel: &mut [f32], src: *const f32, rs: usize, live: usize, kc: usize, width: usize) {
    assert!(panel.len() == kc * width && live <= width && width <= 32);
    for g in (0..width).step_by(16) {
        let lanes = 16.min(width - g);
        let store = ((1u32 << lanes) - 1) as __mmask16;
        for p in (0..kc).step_by(16) {
            let steps = 16.min(kc - p);
            let load = ((1u32 << steps) - 1) as __mmask16;
            let mut block = [_mm512_setzero_ps(); 16];
            for (i, row) in block.iter_mut().enumerate() {
                if g + i < live {
                    // SAFETY: row g + i < live, steps p..p+steps < kc (masked).
                    *row = unsafe { _mm512_maskz_loadu_ps(load, src.add((g + i) * rs + p)) };
                }
            }
            let cols = transpose16(block);
            for (q, col) in cols.iter().take(steps).enumerate() {
                // SAFETY: step p + q < kc, lanes g..g+lanes < width: inside the panel.
                unsafe { _mm512_mask_storeu_ps(panel.as_mut_ptr().add((p + q) * width + g), store, *col) };
            }
        }
    }
}

/// The transpose of a 16 × 16 block held as 16 row vectors: element j of row i becomes element
/// i of row j. Three rounds of shuffles (pairs of rows, pairs of pairs, 128-bit lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+4.
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let x0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        let x1 = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
        let y0 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let y1 = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0x88>(x0, y0);
        out[4 + c] = _mm512_shuffle_f32x4::<0x88>(x1, y1);
        out[8 + c] = _mm512_shuffle_f32x4::<0xDD>(x0, y0);
        out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(x1, y1);
    }
    out
}

/// One `MR × NR` tile: `c[i, j] (+)= Σ_p a[p, i] · b[p, j]` over the packed panels, written for
/// i < rows, j < cols only; added to `c`'s values when `accumulate`.
///
/// # Safety
/// AVX-512 F; `a` holds `kc × MR`, `b` `kc × NR` floats; `c` is writable (and readable when
/// `accumulate`) at `c + i * ldc + j` for i < rows, j < cols.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    // The tile of `c` is read (or written) after the loop: ask for its lines now, so that the
    // misses overlap the loop instead of stalling the stores at the end.
    for i in 0..rows {
        let row = c.wrapping_add(i * ldc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(64));
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, inside both panels.
        let (b0, b1, ap) = unsafe {
            (
                _mm512_loadu_ps(b.add(p * NR)),
                _mm512_loadu_ps(b.add(p * NR + 16)),
                a.add(p * MR),
            )
        };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: i < MR, inside the panel's step p.
            let ai = _mm512_set1_ps(unsafe { *ap.add(i) });
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
    }
    let lanes = |from: usize| -> __mmask16 {
        let n = cols.saturating_sub(from).min(16);
        ((1u32 << n) - 1) as __mmask16
    };
    let (m0, m1) = (lanes(0), lanes(16));
    for (i, row) in acc.iter().take(rows).enumerate() {
        // SAFETY: masked to columns < cols of row i < rows (the caller's contract).
        unsafe {
            let (c0, c1) = (c.add(i * ldc), c.add(i * ldc + 16));
            let (mut v0, mut v1) = (row[0], row[1]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c0));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c1));
            }
            _mm512_mask_storeu_ps(c0, m0, v0);
            _mm512_mask_storeu_ps(c1, m1, v1);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::model::attention::tests::rand_vec;

    #[test]
    fn the_register_transpose_swaps_rows_and_columns() {
        if !available() {
            return;
        }
        let x: Vec<f32> = (0..256).map(|i| i as f32).collect();
        // SAFETY: AVX-512 F is available; each row reads 16 of the 256 floats.
        let got = unsafe {
            let rows = std::array::from_fn(|i| _mm512_loadu_ps(x.as_ptr().add(16 * i)));
            transpose16(rows).map(|v| {
                let mut out = [0f32; 16];
                _mm512_storeu_ps(out.as_mut_ptr(), v);
                out
            })
        };
        for (j, row) in got.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                assert_eq!(*v, x[16 * i + j], "element ({j}, {i})");
            }
        }
    }

    #[test]
    fn the_packed_kernel_matches_the_definition_across_block_edges_and_layouts() {
        if !available() {
            eprintln!("no AVX-512 F on this CPU: the packed kernel is not used here");
            return;
        }
        // Shapes across the tile (12 × 32), depth (256) and column-block (512) edges.
        for &(m, k, n) in &[(1, 1, 1), (12, 256, 32), (13, 257, 33), (25, 600, 530), (7, 3, 1100)] {
            let (a, bv) = (rand_vec(m * k, 3), rand_vec(k * n, 4));
            let bt: Vec<f32> = (0..n * k).map(|i| bv[(i % k) * n + i / k]).collect();
            // Neither stride 1: element (p, j) at p·2n + 2j.
            let spread: Vec<f32> = (0..2 * k * n)
                .map(|i| if i % 2 == 0 { bv[i / 2] } else { f32::NAN })
                .collect();
            let want: Vec<f64> = (0..m * n)
                .map(|i| (0..k).map(|p| a[i / n * k + p] as f64 * bv[p * n + i % n] as f64).sum())
                .collect();
            // Row-major b, b as the transpose of a row-major [n, k], and b spread out (each of
            // the three ways `pack` reads); output rows padded.
            for (data, rs, cs) in [(&bv, n, 1), (&bt, 1, k), (&spread, 2 * n, 2)] {
                let ldc = n + 3;
                let mut c = vec![f32::NAN; m * ldc];
                let lhs = Strided {
                    ptr: a.as_ptr(),
                    rs: k,
                    cs: 1,
                };
                let rhs = Strided {
                    ptr: data.as_ptr(),
                    rs,
                    cs,
                };
                // SAFETY: available() checked; the operands and `c` hold the shapes above.
                unsafe { gemm(m, n, k, lhs, rhs, c.as_mut_ptr(), ldc) };
                for i in 0..m {
                    for j in 0..ldc {
                        let g = c[i * ldc + j];
                        if j >= n {
                            assert!(g.is_nan(), "{m}x{k}x{n}: wrote past column n");
                            continue;
                        }
                        let w = want[i * n + j];
                        assert!(
                            (g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{m}x{k}x{n} ({i},{j}): {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
