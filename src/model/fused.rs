//! Fused row-wise ops with hand-written backward passes for the differentiable path:
//! RMS norm with a frozen weight, and SwiGLU over a fused gate|up projection.
//!
//! candle builds these from composite ops (`rms_norm_slow`: square, mean, add, sqrt, divide,
//! multiply; `silu`, two `narrow`s and a multiply), each a separate pass over memory, a fresh
//! allocation kept alive for the backward, and a spin-barrier dispatch. Here each is one pass
//! forward and one backward, parallel over rows, and keeps nothing but its input and output.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows per rayon task; below two such chunks the op runs on the calling thread.
const ROWS_PER_TASK: usize = 16;

/// The contiguous f32 data of a CPU tensor argument.
fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op} needs a contiguous input")))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// Runs `f(row_index, out_row)` over the rows of `out` (row width `width`), in parallel when
/// there are enough rows.
fn for_rows(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if width == 0 {
        return;
    }
    let rows = out.len() / width;
    if rows < 2 * ROWS_PER_TASK {
        out.chunks_mut(width).enumerate().for_each(|(r, o)| f(r, o));
    } else {
        out.par_chunks_mut(width * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(c, block)| {
                for (i, o) in block.chunks_mut(width).enumerate() {
                    f(c * ROWS_PER_TASK + i, o);
                }
            });
    }
}

/// A tensor's data as a contiguous f32 vector (copies only when it is not contiguous).
fn to_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// Runs `f` on the contiguous f32 data of a CPU tensor, borrowed in place when the tensor is
/// contiguous (the backward's inputs usually are), copied otherwise.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    if let (candle_core::Storage::Cpu(s), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
        return Ok(f(&s.as_slice::<f32>()?[a..b]));
    }
    drop(storage);
    Ok(f(&to_f32(t)?))
}

/// `y = x / sqrt(mean(x²) + eps) · w` over the last dimension of `x` [.., hidden], with `w`
/// [hidden] frozen: the backward gives the gradient of `x` only. Matches candle's `rms_norm`
/// to f32 rounding.
pub struct RmsNormOp {
    /// The norm's weight [hidden].
    pub weight: Vec<f32>,
    pub eps: f32,
}

impl RmsNormOp {
    /// The op for a weight tensor [hidden].
    pub fn new(weight: &Tensor, eps: f32) -> candle_core::Result<Self> {
        Ok(Self {
            weight: to_f32(weight)?,
            eps,
        })
    }

    /// 1 / sqrt(mean(x²) + eps) of one row, summed in f64.
    fn inv_rms(&self, x: &[f32]) -> f32 {
        let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        (1.0 / (ss / x.len() as f64 + self.eps as f64).sqrt()) as f32
    }
}

impl CustomOp1 for RmsNormOp {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "rms norm")?;
        let h = self.weight.len();
        if l.dims().last() != Some(&h) {
            candle_core::bail!("rms norm: input {:?} against a weight of {h}", l.dims());
        }
        let mut y = vec![0f32; x.len()];
        for_rows(&mut y, h, |r, y| {
            let x = &x[r * h..(r + 1) * h];
            let inv = self.inv_rms(x);
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(&self.weight) {
                *y = x * inv * w;
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// With r = 1/rms(x) and g' = g·w: dx = r·g' − x · r³ · mean(g'·x).
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let h = self.weight.len();
        let g = to_f32(grad)?;
        let mut dx = vec![0f32; g.len()];
        with_f32(arg, |x| {
            for_rows(&mut dx, h, |r, dx| {
                let (x, g) = (&x[r * h..(r + 1) * h], &g[r * h..(r + 1) * h]);
                let inv = self.inv_rms(x);
                let dot: f64 = x
                    .iter()
                    .zip(g)
                    .zip(&self.weight)
                    .map(|((&x, &g), &w)| (x * g * w) as f64)
                    .sum();
                let c = (dot / h as f64) as f32 * inv * inv * inv;
                for (((d, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(&self.weight) {
                    *d = inv * g * w - x * c;
                }
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// SwiGLU over a fused projection: input [.., 2·i] holds gate | up side by side; output
/// [.., i] is `silu(gate) · up`.
pub struct SwiGluOp;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp1 for SwiGluOp {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let gu = contiguous_f32(s, l, "swiglu")?;
        let dims = l.dims();
        let two_i = *dims.last().unwrap_or(&0);
        if two_i % 2 != 0 {
            candle_core::bail!("swiglu: last dimension {two_i} is not gate|up");
        }
        let i = two_i / 2;
        let mut out = vec![0f32; gu.len() / 2];
        for_rows(&mut out, i, |r, o| {
            let (g, u) = gu[r * two_i..(r + 1) * two_i].split_at(i);
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o = g * sigmoid(g) * u;
            }
        });
        let mut shape = dims.to_vec();
        *shape.last_mut().unwrap() = i;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    /// d gate = dy · up · σ(g)(1 + g(1 − σ(g))), d up = dy · silu(g).
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dy = to_f32(grad)?;
        let two_i = arg.dims().last().copied().unwrap_or(0);
        let i = two_i / 2;
        let mut d = vec![0f32; 2 * dy.len()];
        with_f32(arg, |gu| {
            for_rows(&mut d, two_i, |r, d| {
                let (g, u) = gu[r * two_i..(r + 1) * two_i].split_at(i);
                let dy = &dy[r * i..(r + 1) * i];
                let (dg, du) = d.split_at_mut(i);
                for j in 0..i {
                    let s = sigmoid(g[j]);
                    du[j] = dy[j] * g[j] * s;
                    dg[j] = dy[j] * u[j] * s * (1.0 + g[j] * (1.0 - s));
                }
            })
        })?;
        Ok(Some(Tensor::from_vec(d, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Var};

    fn random(shape: (usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1;
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Forward value and the gradient of sum(y · probe) of `fused` against `reference`.
    fn compare(x: &Tensor, fused: impl Fn(&Tensor) -> Tensor, reference: impl Fn(&Tensor) -> Tensor) -> (f32, f32) {
        let var = Var::from_tensor(x).unwrap();
        let (yf, yr) = (fused(var.as_tensor()), reference(var.as_tensor()));
        let probe = random(yf.dims2().unwrap(), 99);
        let gf = (&yf * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (&yr * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        (
            max_diff(&yf, &yr),
            max_diff(gf.get(var.as_tensor()).unwrap(), gr.get(var.as_tensor()).unwrap()),
        )
    }

    #[test]
    fn rms_norm_matches_candle_forward_and_gradient() {
        // 40 rows: the parallel path; 3 rows: the serial one.
        for rows in [40, 3] {
            let x = random((rows, 64), rows as u64);
            let w = random((1, 64), 7).squeeze(0).unwrap();
            let (dy, dg) = compare(
                &x,
                |x| x.apply_op1(RmsNormOp::new(&w, 1e-5).unwrap()).unwrap(),
                |x| candle_nn::ops::rms_norm_slow(x, &w, 1e-5).unwrap(),
            );
            assert!(dy < 1e-5, "forward differs by {dy}");
            assert!(dg < 1e-4, "gradient differs by {dg}");
            let inference = candle_nn::ops::rms_norm(&x, &w, 1e-5).unwrap();
            assert!(max_diff(&x.apply_op1(RmsNormOp::new(&w, 1e-5).unwrap()).unwrap(), &inference) < 1e-5);
        }
    }

    #[test]
    fn swiglu_matches_composite_forward_and_gradient() {
        for rows in [40, 3] {
            let x = random((rows, 2 * 48), rows as u64 + 1);
            let (dy, dg) = compare(
                &x,
                |x| x.apply_op1(SwiGluOp).unwrap(),
                |x| {
                    (x.narrow(D::Minus1, 0, 48).unwrap().silu().unwrap() * x.narrow(D::Minus1, 48, 48).unwrap())
                        .unwrap()
                },
            );
            assert!(dy < 1e-5, "forward differs by {dy}");
            assert!(dg < 1e-4, "gradient differs by {dg}");
        }
    }

    #[test]
    fn swiglu_refuses_an_odd_width() {
        assert!(random((2, 5), 1).apply_op1(SwiGluOp).is_err());
    }
}
