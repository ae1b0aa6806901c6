//! A whole transformer block with frozen weights as one differentiable candle op, for the
//! training pass: `x` [t, hidden] → `y` [rows, hidden], with
//! `m = x[rows] + attn(norm₁(x))·W_oᵀ`, `y = m + mlp(norm₂(m))`.
//!
//! Built from the parts' own forward and backward ([`RmsNormOp`], [`QkvAttention`],
//! [`MlpOp`], gemms against the frozen matrices). As separate nodes of candle's graph, every
//! node's input gradient was allocated zeroed and summed into (`zeros_like` + add), the two
//! residual adds were candle binary ops, and the graph kept each node's input alive; here the
//! backward runs the chain by hand and keeps only what it needs: the attention output, the
//! residual stream between the halves, and the parts' own saved state.

use super::fused::{MlpOp, RmsNormOp};
use super::qkv_attention::QkvAttention;
use super::weights::{Frozen, matmul_w, matmul_wt};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use std::sync::Mutex;

/// The block's frozen parameters and this call's attention op.
pub struct BlockOp {
    /// RMSNorm before attention.
    pub attn_norm: RmsNormOp,
    /// Fused q|k|v projection [qd + 2·kvd, hidden].
    pub qkv: Frozen,
    /// This call's attention over its keys.
    pub attn: QkvAttention,
    /// Output projection [hidden, qd].
    pub o: Frozen,
    /// RMSNorm before the MLP.
    pub ffn_norm: RmsNormOp,
    /// The gated MLP.
    pub mlp: MlpOp,
    /// The rows whose output is computed (indices into `x`'s rows); None: all, in order.
    pub keep: Option<Vec<usize>>,
    saved: Mutex<Option<Saved>>,
}

/// What the forward keeps for the backward (besides the parts' own state).
struct Saved {
    /// q|k|v rows (the attention input's shape).
    t: usize,
    /// The attention output [rows, qd].
    att: Vec<f32>,
    /// The residual stream after the attention half [rows, hidden].
    mid: Vec<f32>,
}

fn f32_vec(s: CpuStorage) -> candle_core::Result<Vec<f32>> {
    match s {
        CpuStorage::F32(v) => Ok(v),
        _ => candle_core::bail!("block: f32 only"),
    }
}

impl BlockOp {
    /// The op over the given parts (`attn` built for this call's rows, rope and mask).
    pub fn new(
        attn_norm: RmsNormOp,
        qkv: Frozen,
        attn: QkvAttention,
        o: Frozen,
        ffn_norm: RmsNormOp,
        mlp: MlpOp,
        keep: Option<Vec<usize>>,
    ) -> Self {
        Self {
            attn_norm,
            qkv,
            attn,
            o,
            ffn_norm,
            mlp,
            keep,
            saved: Mutex::new(None),
        }
    }

    /// The row of `x` that output row `i` continues.
    fn source_row(&self, i: usize) -> usize {
        self.keep.as_ref().map_or(i, |k| k[i])
    }
}

/// `a += b` elementwise.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
}

impl CustomOp1 for BlockOp {
    fn name(&self) -> &'static str {
        "transformer-block"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (t, d) = l.shape().dims2()?;
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("block: needs a contiguous input")
        };
        let x = &s.as_slice::<f32>()?[a..b];
        let (h, h_shape) = self.attn_norm.cpu_fwd(s, l)?;
        let (qkv, qkv_shape) = matmul_wt(&h, &Layout::contiguous(h_shape), &self.qkv)?;
        drop(h);
        let (att, att_shape) = self.attn.cpu_fwd(&qkv, &Layout::contiguous(qkv_shape))?;
        drop(qkv);
        let (o, o_shape) = matmul_wt(&att, &Layout::contiguous(att_shape), &self.o)?;
        let mut mid = f32_vec(o)?;
        for (i, row) in mid.chunks_mut(d).enumerate() {
            let r = self.source_row(i);
            add_into(row, &x[r * d..(r + 1) * d]);
        }
        let mid = CpuStorage::F32(mid);
        let mid_layout = Layout::contiguous(o_shape.clone());
        let (h2, _) = self.ffn_norm.cpu_fwd(&mid, &mid_layout)?;
        let (m, _) = self.mlp.cpu_fwd(&h2, &mid_layout)?;
        drop(h2);
        let mid = f32_vec(mid)?;
        let mut y = f32_vec(m)?;
        add_into(&mut y, &mid);
        *self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("block: poisoned".into()))? = Some(Saved {
            t,
            att: f32_vec(att)?,
            mid,
        });
        Ok((CpuStorage::F32(y), o_shape))
    }

    /// dm = dy + norm₂'(mlp'(dy)); dx = norm₁'((attn'(dm·W_o))·W_qkv) + dm at the kept rows.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let Some(saved) = self
            .saved
            .lock()
            .map_err(|_| candle_core::Error::Msg("block: poisoned".into()))?
            .take()
        else {
            candle_core::bail!("block: backward without a forward, or twice")
        };
        let (t, d) = arg.dims2()?;
        let dy = grad.contiguous()?;
        let d_h2 = self.mlp.backward(&dy)?.flatten_all()?.to_vec1::<f32>()?;
        let mut dm = self.ffn_norm.grad(&saved.mid, &d_h2)?;
        add_into(&mut dm, &dy.flatten_all()?.to_vec1::<f32>()?);
        let rows = dm.len() / d;
        let dm_t = Tensor::from_vec(dm, (rows, d), arg.device())?;
        let d_att = matmul_w(&dm_t, &self.o)?.flatten_all()?.to_vec1::<f32>()?;
        let d_qkv = self.attn.backward(saved.t, &saved.att, &d_att)?;
        let w = d_qkv.len() / t;
        let d_h = matmul_w(&Tensor::from_vec(d_qkv, (t, w), arg.device())?, &self.qkv)?;
        let x = arg.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = self.attn_norm.grad(&x, &d_h.flatten_all()?.to_vec1::<f32>()?)?;
        let dm = dm_t.flatten_all()?.to_vec1::<f32>()?;
        for (i, g) in dm.chunks(d).enumerate() {
            let r = self.source_row(i);
            add_into(&mut dx[r * d..(r + 1) * d], g);
        }
        Ok(Some(Tensor::from_vec(dx, (t, d), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attention::AttnShape;
    use crate::model::mask::AttnMask;
    use crate::model::rope::RopeTable;
    use candle_core::{Device, Var};
    use std::sync::Arc;

    fn random(shape: (usize, usize), seed: u64, scale: f64) -> Tensor {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (((s >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0) as f32
            })
            .collect();
        (Tensor::from_vec(v, shape, &Device::Cpu).unwrap() * scale).unwrap()
    }

    /// The block op against the same parts as separate nodes of candle's graph (each part
    /// checked against candle's own composite ops in its module): forward and input gradient,
    /// with every row kept and with only the last two.
    #[test]
    fn block_matches_its_parts_as_separate_graph_nodes() {
        let (t, d, inter) = (40, 32, 48);
        let shape = AttnShape {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 16,
        };
        let (qd, kvd) = (64, 32);
        let qkv_w = random((qd + 2 * kvd, d), 1, 0.3);
        let o_w = random((d, qd), 2, 0.3);
        let gu_w = random((2 * inter, d), 3, 0.3);
        let down_w = random((d, inter), 4, 0.3);
        let norm = |seed| random((1, d), seed, 1.0).squeeze(0).unwrap();
        let (n1, n2) = (norm(5), norm(6));
        let bias: Vec<f32> = random((1, qd + 2 * kvd), 7, 0.5)
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let positions: Vec<i64> = (0..t as i64).map(|p| p + 3).collect();
        let rope = Arc::new(RopeTable::new(
            &[1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.001],
            &positions,
            false,
        ));
        let x = Var::from_tensor(&random((t, d), 8, 1.0)).unwrap();
        let probe_rows = |n| random((n, d), 9, 1.0);
        for keep in [None, Some(vec![t - 2, t - 1])] {
            let full_mask = AttnMask::causal(0, t);
            let mask = Arc::new(match &keep {
                Some(rows) => full_mask.select_rows(rows).unwrap(),
                None => full_mask,
            });
            let attn = || {
                QkvAttention::new(
                    Some(bias.clone()),
                    rope.clone(),
                    mask.clone(),
                    shape,
                    keep.clone(),
                    None,
                )
            };
            let op = BlockOp::new(
                RmsNormOp::new(&n1, 1e-5).unwrap(),
                qkv_w.clone().into(),
                attn(),
                o_w.clone().into(),
                RmsNormOp::new(&n2, 1e-5).unwrap(),
                MlpOp::new(&gu_w.clone().into(), &down_w.clone().into()).unwrap(),
                keep.clone(),
            );
            let fused = x.apply_op1(op).unwrap();
            let h = x.apply_op1(RmsNormOp::new(&n1, 1e-5).unwrap()).unwrap();
            let att = h.matmul(&qkv_w.t().unwrap()).unwrap().apply_op1(attn()).unwrap();
            let xk = match &keep {
                Some(rows) => x
                    .index_select(
                        &Tensor::new(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), &Device::Cpu).unwrap(),
                        0,
                    )
                    .unwrap(),
                None => x.as_tensor().clone(),
            };
            let m = (xk + att.matmul(&o_w.t().unwrap()).unwrap()).unwrap();
            let mlp = m
                .apply_op1(RmsNormOp::new(&n2, 1e-5).unwrap())
                .unwrap()
                .apply_op1(MlpOp::new(&gu_w.clone().into(), &down_w.clone().into()).unwrap())
                .unwrap();
            let reference = (&m + mlp).unwrap();
            let diff = |a: &Tensor, b: &Tensor| crate::model::tiny::max_abs_diff(a, b).unwrap();
            assert!(
                diff(&fused, &reference) < 1e-4,
                "forward differs by {}",
                diff(&fused, &reference)
            );
            let probe = probe_rows(fused.dim(0).unwrap());
            let gf = (&fused * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let gr = (&reference * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, b) = (gf.get(&x).unwrap(), gr.get(&x).unwrap());
            assert!(diff(a, b) < 1e-4, "gradient differs by {}", diff(a, b));
        }
    }
}
