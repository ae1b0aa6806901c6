//! Fused ops with hand-written backward passes for the differentiable path: RMS norm with a
//! frozen weight, SwiGLU over a fused gate|up projection, and the whole frozen MLP.
//!
//! candle builds these from composite ops (`rms_norm_slow`: square, mean, add, sqrt, divide,
//! multiply; `silu`, two `narrow`s and a multiply), each a separate pass over memory, a fresh
//! allocation kept alive for the backward, and a spin-barrier dispatch. Here each is one pass
//! forward and one backward, parallel over rows, and keeps nothing but its input and output.

use super::attention::fast_exp;
use super::weights::{Frozen, matmul_w};
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
pub(super) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
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
    /// Epsilon added to the mean square.
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

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = with_f32(arg, |x| self.grad(x, &to_f32(grad)?))??;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

impl RmsNormOp {
    /// The input's gradient [rows, hidden] from the input `x` and the output's gradient `g`.
    /// With r = 1/rms(x) and g' = g·w: dx = r·g' − x · r³ · mean(g'·x).
    pub fn grad(&self, x: &[f32], g: &[f32]) -> candle_core::Result<Vec<f32>> {
        let h = self.weight.len();
        if x.len() != g.len() || h == 0 || !x.len().is_multiple_of(h) {
            candle_core::bail!(
                "rms norm backward: {} inputs, {} gradients, width {h}",
                x.len(),
                g.len()
            );
        }
        let mut dx = vec![0f32; g.len()];
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
        });
        Ok(dx)
    }
}

/// SwiGLU over a fused projection (inference; the differentiable path uses [`MlpOp`]): input
/// [.., 2·i] holds gate | up side by side; output [.., i] is `silu(gate) · up`.
pub struct SwiGluOp;

/// σ(x) with the vectorizable [`fast_exp`] (relative error ~2e-7): `f32::exp` is a libm call
/// per element, which kept SwiGLU's loops scalar (5% of a SmolLM2 training pass).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// `silu(gate) · up` of every row of `gu` [rows, 2·i] (gate | up): [rows, i].
fn swiglu_rows(gu: &[f32], i: usize) -> Vec<f32> {
    let mut out = vec![0f32; gu.len() / 2];
    for_rows(&mut out, i, |r, o| {
        let (g, u) = gu[r * 2 * i..(r + 1) * 2 * i].split_at(i);
        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
            *o = g * sigmoid(g) * u;
        }
    });
    out
}

/// Replaces each row of `gu` [rows, 2·i] (gate | up) by its gradient given the output's
/// gradient `dy` [rows, i]: d gate = dy · up · σ(g)(1 + g(1 − σ(g))), d up = dy · silu(g).
fn swiglu_grad_in_place(gu: &mut [f32], dy: &[f32], i: usize) {
    for_rows(gu, 2 * i, |r, row| {
        let dy = &dy[r * i..(r + 1) * i];
        let (g, u) = row.split_at_mut(i);
        for ((g, u), &dy) in g.iter_mut().zip(u.iter_mut()).zip(dy) {
            let (s, gj, uj) = (sigmoid(*g), *g, *u);
            *u = dy * gj * s;
            *g = dy * uj * s * (1.0 + gj * (1.0 - s));
        }
    });
}

/// The gate|up width of a SwiGLU input layout, refusing an odd one.
fn swiglu_half(dims: &[usize]) -> candle_core::Result<usize> {
    let two_i = *dims.last().unwrap_or(&0);
    if !two_i.is_multiple_of(2) {
        candle_core::bail!("swiglu: last dimension {two_i} is not gate|up");
    }
    Ok(two_i / 2)
}

impl CustomOp1 for SwiGluOp {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let gu = contiguous_f32(s, l, "swiglu")?;
        let i = swiglu_half(l.dims())?;
        let mut shape = l.dims().to_vec();
        *shape.last_mut().unwrap() = i;
        Ok((CpuStorage::F32(swiglu_rows(gu, i)), Shape::from(shape)))
    }
}

/// The whole MLP of a block with frozen weights as one differentiable op:
/// `y = swiglu(x·W_guᵀ)·W_downᵀ` for `x` [t, hidden]. Against the same three ops in candle's
/// graph it keeps only the gate|up activations for the backward (not the SwiGLU output), and
/// its backward writes the gate|up gradient over them in place: candle would allocate a zeroed
/// gradient plus a sum for each of the two wide intermediates ([t, 2·i] and [t, i]).
pub struct MlpOp {
    gate_up: Frozen,
    down: Frozen,
    /// The forward's gate|up activations [t, 2·i], taken by the backward.
    saved: std::sync::Mutex<Option<Vec<f32>>>,
}

impl MlpOp {
    /// The op for a fused gate|up matrix [2·i, hidden] and a down matrix [hidden, i].
    pub fn new(gate_up: &Frozen, down: &Frozen) -> candle_core::Result<Self> {
        let (two_i, hidden) = gate_up.w.dims2()?;
        if down.w.dims2()? != (hidden, two_i / 2) || two_i % 2 != 0 {
            candle_core::bail!(
                "mlp: gate|up {:?} and down {:?} do not fit",
                gate_up.w.dims(),
                down.w.dims()
            );
        }
        Ok(Self {
            gate_up: gate_up.clone(),
            down: down.clone(),
            saved: std::sync::Mutex::new(None),
        })
    }
}

impl CustomOp1 for MlpOp {
    fn name(&self) -> &'static str {
        "fused-mlp"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (gu, gu_shape) = super::weights::matmul_wt(s, l, &self.gate_up)?;
        let CpuStorage::F32(gu) = gu else {
            candle_core::bail!("mlp: f32 only")
        };
        let (t, two_i) = gu_shape.dims2()?;
        let act = CpuStorage::F32(swiglu_rows(&gu, two_i / 2));
        let out = super::weights::matmul_wt(&act, &Layout::contiguous((t, two_i / 2)), &self.down)?;
        *self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("mlp: poisoned".into()))? = Some(gu);
        Ok(out)
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.backward(grad)?))
    }
}

impl MlpOp {
    /// The input's gradient dx = (swiglu'(gu) ⊙ (dy·W_down))·W_gu from the output's gradient,
    /// using (and consuming) the forward's saved gate|up activations.
    pub fn backward(&self, grad: &Tensor) -> candle_core::Result<Tensor> {
        let saved = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("mlp: poisoned".into()))?
            .take();
        let Some(mut gu) = saved else {
            candle_core::bail!("mlp: backward without a forward, or twice")
        };
        let d_act = matmul_w(grad, &self.down)?;
        let (t, i) = d_act.dims2()?;
        with_f32(&d_act, |dy| swiglu_grad_in_place(&mut gu, dy, i))?;
        matmul_w(&Tensor::from_vec(gu, (t, 2 * i), grad.device())?, &self.gate_up)
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
    fn swiglu_matches_composite_forward() {
        for rows in [40, 3] {
            let x = random((rows, 2 * 48), rows as u64 + 1);
            let fused = x.apply_op1_no_bwd(&SwiGluOp).unwrap();
            let composite =
                (x.narrow(D::Minus1, 0, 48).unwrap().silu().unwrap() * x.narrow(D::Minus1, 48, 48).unwrap()).unwrap();
            assert!(max_diff(&fused, &composite) < 1e-5);
        }
    }

    #[test]
    fn mlp_matches_linear_swiglu_linear_forward_and_gradient() {
        let (hidden, i) = (32, 48);
        let gate_up = (random((2 * i, hidden), 3) * 0.2).unwrap();
        let down = (random((hidden, i), 4) * 0.2).unwrap();
        for rows in [40, 3] {
            let x = random((rows, hidden), rows as u64 + 2);
            let (dy, dg) = compare(
                &x,
                |x| {
                    x.apply_op1(MlpOp::new(&gate_up.clone().into(), &down.clone().into()).unwrap())
                        .unwrap()
                },
                |x| {
                    let gu = x.matmul(&gate_up.t().unwrap()).unwrap();
                    let act = (gu.narrow(D::Minus1, 0, i).unwrap().silu().unwrap()
                        * gu.narrow(D::Minus1, i, i).unwrap())
                    .unwrap();
                    act.matmul(&down.t().unwrap()).unwrap()
                },
            );
            assert!(dy < 1e-4, "forward differs by {dy}");
            assert!(dg < 1e-4, "gradient differs by {dg}");
        }
        assert!(MlpOp::new(&gate_up.clone().into(), &gate_up.into()).is_err());
    }

    #[test]
    fn swiglu_refuses_an_odd_width() {
        assert!(random((2, 5), 1).apply_op1(SwiGluOp).is_err());
    }
}
