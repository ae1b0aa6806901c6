//! Decode-sized matrix products over a GGUF file's own 4-, 5- and 8-bit blocks (Q4_1, Q5_0,
//! Q8_0): the weights stay in the file's format (0.63 / 0.69 / 1.06 bytes a weight), each
//! activation row is quantized to 8 bits per 32-wide block, and every weight row is dotted
//! with every activation row in integer multiply-adds, one f32 scale per block.
//!
//! Decode reads every weight once per token, so its speed is the bytes it moves. Written by
//! hand because candle 0.11 has no x86 SIMD path for Q4_1 or Q5_0 (SmolLM2's and most of
//! Qwen2.5's matrices): its scalar dot is slower than the 8-bit copy this replaces. The AVX2
//! kernels are chosen at run time (`is_x86_feature_detected!`); the scalar ones are the
//! reference they are tested against and the path on other machines.

use anyhow::{Result, bail};
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

/// Weights per block in every supported format.
const BLOCK: usize = 32;

/// Weight rows dotted together (a group's last rows repeat its last row when `rows` is not a
/// multiple; the repeats are computed and dropped). 1, measured: on a 2-core Zen 3 VM, 2 or 4
/// interleaved row streams were 10-25% faster with the weights in cache but 1.3-2× slower
/// streaming from memory, which is where decode reads them.
const ROWS: usize = 1;

/// A block format of the GGUF file that these kernels run on as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    /// `[d: f16][m: f16][16 bytes of nibbles]`: `w = d·q + m`, `q` in 0..16.
    Q4_1,
    /// `[d: f16][32 high bits][16 bytes of nibbles]`: `w = d·(q - 16)`, `q` in 0..32.
    Q5_0,
    /// `[d: f16][32 × i8]`: `w = d·q`.
    Q8_0,
}

impl BlockFormat {
    /// The format of a GGUF tensor type, when these kernels run it.
    pub fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4_1 => Some(Self::Q4_1),
            GgmlDType::Q5_0 => Some(Self::Q5_0),
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            _ => None,
        }
    }

    /// Bytes of one block of 32 weights.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
        }
    }
}

/// A weight matrix [rows (outputs), cols (inputs)] in one of the file's block formats, row
/// after row, exactly as stored in the GGUF file.
pub struct BlockMatrix {
    format: BlockFormat,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    avx2: bool,
}

/// One activation row quantized to 8 bits per block: `x ≈ ds[b][0]·q[32b + j]`, with
/// `ds[b][1] = ds[b][0]·Σ_j q[32b + j]` (what the Q4_1 offset and the Q5_0 bias multiply);
/// scale and sum side by side, so that one 8-byte load fetches both.
struct QuantRow {
    ds: Vec<[f32; 2]>,
    q: Vec<i8>,
}

impl QuantRow {
    /// Quantizes `x` (a multiple of 32 long) to the nearest of 255 levels per block.
    fn new(x: &[f32]) -> Self {
        let nb = x.len() / BLOCK;
        let (mut ds, mut q) = (Vec::with_capacity(nb), vec![0i8; x.len()]);
        for (xb, qb) in x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK)) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for (qv, &xv) in qb.iter_mut().zip(xb) {
                *qv = (xv * inv).round() as i8;
                sum += *qv as i32;
            }
            ds.push([scale, scale * sum as f32]);
        }
        Self { ds, q }
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The unsigned 4- or 5-bit level of weight `j` of a Q4_1 / Q5_0 block (nibbles at `at`).
fn level(blk: &[u8], at: usize, j: usize) -> i32 {
    let byte = blk[at + j % 16];
    (if j < 16 { byte & 15 } else { byte >> 4 }) as i32
}

impl BlockMatrix {
    /// Takes a GGUF tensor [rows, cols] as stored; `None` when its type is not one of
    /// [`BlockFormat`]'s.
    pub fn from_qtensor(t: &QTensor) -> Result<Option<Self>> {
        let Some(format) = BlockFormat::of(t.dtype()) else {
            return Ok(None);
        };
        let (rows, cols) = t.shape().dims2()?;
        let data = t.data()?.into_owned();
        Self::new(format, rows, cols, data).map(Some)
    }

    /// A matrix from raw blocks; fails when the sizes disagree.
    pub fn new(format: BlockFormat, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self> {
        if !cols.is_multiple_of(BLOCK) {
            bail!("a {format:?} matrix needs a multiple of {BLOCK} columns, got {cols}");
        }
        if data.len() != rows * cols / BLOCK * format.block_bytes() {
            bail!("{format:?} data of {} bytes for a [{rows}, {cols}] matrix", data.len());
        }
        Ok(Self {
            format,
            rows,
            cols,
            data,
            avx2: simd_available(),
        })
    }

    /// Appends `other`'s rows below this matrix's (a fused projection made of several file
    /// tensors runs as one matrix); fails unless both have one format and one width.
    pub fn append(&mut self, other: BlockMatrix) -> Result<()> {
        if other.format != self.format || other.cols != self.cols {
            bail!(
                "cannot stack a {:?} [{}, {}] matrix below a {:?} [{}, {}] one",
                other.format,
                other.rows,
                other.cols,
                self.format,
                self.rows,
                self.cols
            );
        }
        self.data.extend_from_slice(&other.data);
        self.rows += other.rows;
        Ok(())
    }

    /// The block format the rows are stored in.
    pub fn format(&self) -> BlockFormat {
        self.format
    }

    /// Output width (rows of the matrix).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes `x·Wᵀ` for `x` [m, cols] (row-major) into columns `col0..col0 + rows` of `out`
    /// [m, ld]; other columns are left alone. Rows of W are split over candle's thread pool.
    pub fn matmul_into(&self, x: &[f32], m: usize, out: &mut [f32], ld: usize, col0: usize) {
        assert_eq!(x.len(), m * self.cols, "activation shape");
        assert!(col0 + self.rows <= ld && out.len() >= m * ld, "output shape");
        let acts: Vec<QuantRow> = x.chunks_exact(self.cols).map(QuantRow::new).collect();
        let row_bytes = self.cols / BLOCK * self.format.block_bytes();
        let out_ptr = out.as_mut_ptr() as usize;
        // Work items are groups of ROWS weight rows: each group is read once per activation row
        // with its rows' streams interleaved, sharing every activation block load.
        let groups = self.rows.div_ceil(ROWS);
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            for g in range {
                let r0 = g * ROWS;
                let n = ROWS.min(self.rows - r0);
                let w = |r: usize| &self.data[(r0 + r.min(n - 1)) * row_bytes..(r0 + r.min(n - 1) + 1) * row_bytes];
                for (i, a) in acts.iter().enumerate() {
                    let v = self.dot(std::array::from_fn(w), a);
                    for (r, &v) in v.iter().enumerate().take(n) {
                        // SAFETY: `out` holds m·ld elements (asserted above) and each
                        // (i, col0 + r0 + r) is written by exactly one work item.
                        unsafe { *(out_ptr as *mut f32).add(i * ld + col0 + r0 + r) = v };
                    }
                }
            }
        });
    }

    /// Dot products of `ROWS` weight rows with one quantized activation row.
    fn dot(&self, w: [&[u8]; ROWS], a: &QuantRow) -> [f32; ROWS] {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only when the CPU reports AVX2, FMA and F16C; every row
            // holds cols/32 whole blocks and `a` cols/32 blocks.
            return unsafe {
                match self.format {
                    BlockFormat::Q4_1 => avx2::dot_q4_1(w, a),
                    BlockFormat::Q5_0 => avx2::dot_q5_0(w, a),
                    BlockFormat::Q8_0 => avx2::dot_q8_0(w, a),
                }
            };
        }
        w.map(|w| self.dot_scalar(w, a))
    }

    /// The reference dot product of one weight row with one quantized activation row.
    fn dot_scalar(&self, w: &[u8], a: &QuantRow) -> f32 {
        let bb = self.format.block_bytes();
        let mut acc = 0f32;
        for (b, blk) in w.chunks_exact(bb).enumerate() {
            let q = &a.q[b * BLOCK..(b + 1) * BLOCK];
            let (d, [ad, asum]) = (f16_at(blk, 0), a.ds[b]);
            acc += match self.format {
                BlockFormat::Q4_1 => {
                    let isum: i32 = (0..BLOCK).map(|j| level(blk, 4, j) * q[j] as i32).sum();
                    d * ad * isum as f32 + f16_at(blk, 2) * asum
                }
                BlockFormat::Q5_0 => {
                    let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                    let isum: i32 = (0..BLOCK)
                        .map(|j| (level(blk, 6, j) | (((qh >> j) & 1) << 4) as i32) * q[j] as i32)
                        .sum();
                    d * ad * isum as f32 - 16.0 * d * asum
                }
                BlockFormat::Q8_0 => {
                    let isum: i32 = (0..BLOCK).map(|j| blk[2 + j] as i8 as i32 * q[j] as i32).sum();
                    d * ad * isum as f32
                }
            };
        }
        acc
    }
}

/// True when the AVX2 kernels can run on this CPU (AVX2, FMA and F16C).
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The dot products of `BlockMatrix::dot_scalar`, 32 weights per step: the weight levels
    //! as unsigned bytes times the activation's signed bytes (`maddubs`), summed to 8 i32
    //! lanes, scaled per block into 8 f32 accumulators; the per-block offset terms (Q4_1's
    //! `m`, Q5_0's −16) go to a second accumulator lane from the activation's block sums.
    //!
    //! The f16 block scales are read with `movd` + `vcvtph2ps`, never a scalar insert: an
    //! insert merges into a register and chained every block to the one before (15 cycles a
    //! block instead of ~5).
    use super::{BLOCK, QuantRow};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// 16 bytes of nibbles at `p` as 32 unsigned bytes: low nibbles then high nibbles.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        let qs = unsafe { _mm_loadu_si128(p as *const __m128i) };
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0F))
    }

    /// Σ over 32 lanes of `u·q` (u unsigned, q signed) as 8 f32 lanes.
    #[target_feature(enable = "avx2,fma")]
    fn dot_bytes(u: __m256i, q: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1)))
    }

    /// The two f16 values at `p` as `[p0, p1, 0, 0]`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn two_f16(p: *const u8) -> __m128 {
        // SAFETY: the caller guarantees 4 readable bytes at `p`.
        unsafe { _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned())) }
    }

    /// Block `b`'s activation scale and scaled sum as `[d, s, 0, 0]`, and its 32 bytes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn activation(a: &QuantRow, b: usize) -> (__m128, __m256i) {
        // SAFETY: the caller guarantees block b exists in `a` (ds[b] and q[32b..32b + 32]).
        unsafe {
            (
                _mm_castpd_ps(_mm_load_sd(a.ds.as_ptr().add(b) as *const f64)),
                _mm256_loadu_si256(a.q.as_ptr().add(b * BLOCK) as *const __m256i),
            )
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C present; every row of `w` holds whole 20-byte blocks, as many as `a`
    /// has.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1<const R: usize>(w: [&[u8]; R], a: &QuantRow) -> [f32; R] {
        let (mut acc, mut offset) = ([_mm256_setzero_ps(); R], [_mm_setzero_ps(); R]);
        for b in 0..a.ds.len() {
            // SAFETY: block b exists in a and in every row (20 bytes at 20b: [d, m] then nibbles).
            let (ads, q) = unsafe { activation(a, b) };
            for r in 0..R {
                let (dm, u) = unsafe {
                    let p = w[r].as_ptr().add(20 * b);
                    (two_f16(p), nibbles(p.add(4)))
                };
                // [d·ad, m·as]: lane 0 scales the integer sum, lane 1 is the offset term.
                let p = _mm_mul_ps(dm, ads);
                acc[r] = _mm256_fmadd_ps(dot_bytes(u, q), _mm256_broadcastss_ps(p), acc[r]);
                offset[r] = _mm_add_ps(offset[r], p);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]) + _mm_cvtss_f32(_mm_movehdup_ps(offset[r])))
    }

    /// # Safety
    /// AVX2, FMA and F16C present; every row of `w` holds whole 22-byte blocks, as many as `a`
    /// has.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q5_0<const R: usize>(w: [&[u8]; R], a: &QuantRow) -> [f32; R] {
        // Byte j of the 32 gets bit j of the block's 32 high bits: spread byte j/8 of them to
        // lanes j (within each 128-bit half), keep bit j%8, and turn it into 0x10.
        let spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
        let bit = _mm256_set1_epi64x(0x8040201008040201u64 as i64);
        let (mut acc, mut bias) = ([_mm256_setzero_ps(); R], [_mm_setzero_ps(); R]);
        for b in 0..a.ds.len() {
            // SAFETY: block b exists in a and in every row (22 bytes at 22b: d, high bits,
            // nibbles).
            let (ads, q) = unsafe { activation(a, b) };
            for r in 0..R {
                let (dx, qh, lo) = unsafe {
                    let p = w[r].as_ptr().add(22 * b);
                    (two_f16(p), (p.add(2) as *const i32).read_unaligned(), nibbles(p.add(6)))
                };
                let hb = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(qh), spread), bit);
                let u = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(hb, bit), _mm256_set1_epi8(0x10)));
                // [d·ad, d·as]: lane 0 scales the integer sum, lane 1 is the −16 bias term.
                let p = _mm_mul_ps(_mm_moveldup_ps(dx), ads);
                acc[r] = _mm256_fmadd_ps(dot_bytes(u, q), _mm256_broadcastss_ps(p), acc[r]);
                bias[r] = _mm_add_ps(bias[r], p);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]) - 16.0 * _mm_cvtss_f32(_mm_movehdup_ps(bias[r])))
    }

    /// # Safety
    /// AVX2, FMA and F16C present; every row of `w` holds whole 34-byte blocks, as many as `a`
    /// has.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0<const R: usize>(w: [&[u8]; R], a: &QuantRow) -> [f32; R] {
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..a.ds.len() {
            // SAFETY: block b exists in a and in every row (34 bytes at 34b: d, 32 weights). The
            // scale read takes 4 bytes, the last two the first weights' (an unused lane).
            let (ads, q) = unsafe { activation(a, b) };
            for r in 0..R {
                let (dx, wv) = unsafe {
                    let p = w[r].as_ptr().add(34 * b);
                    (two_f16(p), _mm256_loadu_si256(p.add(2) as *const __m256i))
                };
                // Signed × signed through maddubs: |w| times q with w's sign moved onto q.
                let p = dot_bytes(_mm256_abs_epi8(wv), _mm256_sign_epi8(q, wv));
                acc[r] = _mm256_fmadd_ps(p, _mm256_broadcastss_ps(_mm_mul_ps(dx, ads)), acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    use crate::model::attention::tests::rand_vec as random;

    /// Each format against the f32 product with the dequantized weights (the reference
    /// path), the AVX2 kernels against the scalar ones, and the column offset.
    #[test]
    fn block_products_match_the_dequantized_matmul() {
        let (rows, cols, m) = (40, 96, 3);
        let dev = Device::Cpu;
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0] {
            let w = Tensor::from_vec(random(rows * cols, 1), (rows, cols), &dev).unwrap();
            let qt = QTensor::quantize(&w, dtype).unwrap();
            let mat = BlockMatrix::from_qtensor(&qt).unwrap().unwrap();
            let x = random(m * cols, 2);
            let (ld, col0) = (rows + 5, 3);
            let mut out = vec![f32::NAN; m * ld];
            mat.matmul_into(&x, m, &mut out, ld, col0);
            let xt = Tensor::from_vec(x.clone(), (m, cols), &dev).unwrap();
            let want = xt
                .matmul(&qt.dequantize(&dev).unwrap().t().unwrap())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let row_bytes = cols / BLOCK * mat.format.block_bytes();
            for i in 0..m {
                assert!(
                    out[i * ld..i * ld + col0].iter().all(|v| v.is_nan()),
                    "{dtype:?}: wrote left of its columns"
                );
                assert!(out[i * ld + col0 + rows..(i + 1) * ld].iter().all(|v| v.is_nan()));
                let act = QuantRow::new(&x[i * cols..(i + 1) * cols]);
                for r in 0..rows {
                    let got = out[i * ld + col0 + r];
                    // 8-bit activations: error ~ |x|·|w|·√cols / 255.
                    assert!(
                        (got - want[i][r]).abs() < 0.05,
                        "{dtype:?} [{i},{r}]: {got} vs {}",
                        want[i][r]
                    );
                    let scalar = mat.dot_scalar(&mat.data[r * row_bytes..(r + 1) * row_bytes], &act);
                    assert!(
                        (got - scalar).abs() < 1e-4 * (1.0 + scalar.abs()),
                        "{dtype:?}: simd {got} vs scalar {scalar}"
                    );
                }
            }
        }
    }

    /// The scalar kernels agree with candle's own products on the same blocks (candle
    /// quantizes activations the same way), including Q5_0 weights that use the high bit.
    #[test]
    fn scalar_kernels_match_candle() {
        let dev = Device::Cpu;
        let (rows, cols) = (8, 64);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0] {
            let w = Tensor::from_vec(random(rows * cols, 3), (rows, cols), &dev).unwrap();
            let qt = QTensor::quantize(&w, dtype).unwrap();
            let mut mat = BlockMatrix::from_qtensor(&qt).unwrap().unwrap();
            mat.avx2 = false;
            let x = random(cols, 4);
            let mut out = vec![0f32; rows];
            mat.matmul_into(&x, 1, &mut out, rows, 0);
            let qm = candle_core::quantized::QMatMul::from_qtensor(qt).unwrap();
            let xt = Tensor::from_vec(x, (1, cols), &dev).unwrap();
            let want = candle_core::Module::forward(&qm, &xt)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for r in 0..rows {
                assert!(
                    (out[r] - want[0][r]).abs() < 5e-3,
                    "{dtype:?} row {r}: {} vs {}",
                    out[r],
                    want[0][r]
                );
            }
        }
    }

    /// Stacked matrices compute what the parts compute side by side.
    #[test]
    fn appended_rows_equal_the_parts() {
        let dev = Device::Cpu;
        let part = |rows: usize, seed: u64, dtype| {
            let w = Tensor::from_vec(random(rows * 64, seed), (rows, 64), &dev).unwrap();
            BlockMatrix::from_qtensor(&QTensor::quantize(&w, dtype).unwrap())
                .unwrap()
                .unwrap()
        };
        let x = random(2 * 64, 9);
        let (a, b) = (part(5, 1, GgmlDType::Q5_0), part(3, 2, GgmlDType::Q5_0));
        let mut sep = vec![0f32; 2 * 8];
        a.matmul_into(&x, 2, &mut sep, 8, 0);
        b.matmul_into(&x, 2, &mut sep, 8, 5);
        let mut stacked = part(5, 1, GgmlDType::Q5_0);
        stacked.append(part(3, 2, GgmlDType::Q5_0)).unwrap();
        let mut one = vec![0f32; 2 * 8];
        stacked.matmul_into(&x, 2, &mut one, 8, 0);
        assert_eq!(sep, one);
        assert!(stacked.append(part(2, 3, GgmlDType::Q8_0)).is_err());
    }

    #[test]
    fn rejects_mismatched_sizes() {
        assert!(BlockMatrix::new(BlockFormat::Q4_1, 2, 48, vec![0; 40]).is_err());
        assert!(BlockMatrix::new(BlockFormat::Q5_0, 2, 64, vec![0; 22 * 3]).is_err());
        assert!(BlockMatrix::new(BlockFormat::Q8_0, 2, 64, vec![0; 34 * 4]).is_ok());
    }
}
