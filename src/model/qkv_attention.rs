//! The attention half of a block on the differentiable path as one candle op: from the fused
//! q|k|v projection [t, qd + 2·kvd] to the attention output [rows, qd], with the frozen bias,
//! the split, the rotary embedding, the query-row selection and the splice into frozen K,V done
//! inside. In candle's graph the same steps were three `narrow`s, three contiguous copies, two
//! rope ops and a three-input attention op: the backward then built each of q, k and v's
//! gradients as a zero-padded copy of the full q|k|v width and summed the three into a zeroed
//! fourth. Here the backward writes the q|k|v gradient once.

use super::attention::{AttnGrads, AttnInputs, AttnShape, attention_backward, attention_forward};
use super::mask::AttnMask;
use super::rope::RopeTable;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// One layer's K,V for the rows of the sequence that get no gradient (see
/// [`super::FrozenKv`]): the whole sequence's K and V [rows, kvd], whose `live` rows are
/// replaced by the call's own.
pub struct FrozenLayer {
    /// Keys of the whole sequence [rows, kvd].
    pub k: Vec<f32>,
    /// Values of the whole sequence [rows, kvd].
    pub v: Vec<f32>,
    /// The call's rows in the sequence, ascending.
    pub live: Vec<usize>,
}

/// Where the backward passes of a differentiable forward add the gradient of the mask's
/// per-head key factors ([`AttnMask::with_head_key_scale`]), laid out like them (layer-major).
pub type HeadScaleGrad = Arc<Mutex<Vec<f32>>>;

/// What the forward keeps for the backward.
struct Saved {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    lse: Vec<f32>,
}

/// Attention from a fused q|k|v projection, with a backward pass to that projection.
pub struct QkvAttention {
    /// The q|k|v bias [qd + 2·kvd] (Qwen2), added before the split.
    bias: Option<Vec<f32>>,
    rope: Arc<RopeTable>,
    /// The mask of the kept query rows.
    mask: Arc<AttnMask>,
    shape: AttnShape,
    /// The query rows kept (indices into the input's rows); None: all, in order.
    keep: Option<Vec<usize>>,
    frozen: Option<FrozenLayer>,
    /// The layer this call runs (which of the mask's per-head key factors apply).
    layer: usize,
    /// Where the backward adds the key factors' gradient (None: not needed).
    head_grad: Option<HeadScaleGrad>,
    saved: Mutex<Option<Saved>>,
}

/// Rows `rows` of `x` (row width `w`), in that order.
pub(super) fn gather(x: &[f32], rows: &[usize], w: usize) -> Vec<f32> {
    rows.iter().flat_map(|&r| &x[r * w..(r + 1) * w]).copied().collect()
}

/// `base` with its rows `rows` replaced by the rows of `x` (row width `w`).
fn scatter(mut base: Vec<f32>, x: &[f32], rows: &[usize], w: usize) -> Vec<f32> {
    for (&r, src) in rows.iter().zip(x.chunks(w)) {
        base[r * w..(r + 1) * w].copy_from_slice(src);
    }
    base
}

fn poisoned<T>(_: T) -> candle_core::Error {
    candle_core::Error::Msg("qkv attention: poisoned state".into())
}

impl QkvAttention {
    /// The op for one layer's call: `bias` is added to every input row, `rope` has one row per
    /// input row, `mask` one row per kept query row (all input rows when `keep` is None), with
    /// key indices over the input rows or, with `frozen`, over the whole sequence. It runs
    /// layer 0 and keeps no key-factor gradient unless [`QkvAttention::at_layer`] says otherwise.
    pub fn new(
        bias: Option<Vec<f32>>,
        rope: Arc<RopeTable>,
        mask: Arc<AttnMask>,
        shape: AttnShape,
        keep: Option<Vec<usize>>,
        frozen: Option<FrozenLayer>,
    ) -> Self {
        Self {
            bias,
            rope,
            mask,
            shape,
            keep,
            frozen,
            layer: 0,
            head_grad: None,
            saved: Mutex::new(None),
        }
    }

    /// This op as layer `layer`'s (its per-head key factors), adding their gradient to
    /// `head_grad` in the backward when given.
    pub fn at_layer(mut self, layer: usize, head_grad: Option<HeadScaleGrad>) -> Self {
        self.layer = layer;
        self.head_grad = head_grad;
        self
    }

    fn widths(&self) -> (usize, usize) {
        let s = self.shape;
        (s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim)
    }
}

impl CustomOp1 for QkvAttention {
    fn name(&self) -> &'static str {
        "qkv-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (qd, kvd) = self.widths();
        let (t, w) = l.shape().dims2()?;
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("qkv attention needs a contiguous input")
        };
        if w != qd + 2 * kvd || self.rope.len() != t || self.bias.as_ref().is_some_and(|b| b.len() != w) {
            candle_core::bail!(
                "qkv attention: input {:?} against q|k|v width {} and {} positions",
                l.dims(),
                qd + 2 * kvd,
                self.rope.len()
            );
        }
        let qkv = &s.as_slice::<f32>()?[a..b];
        let part = |from: usize, width: usize| -> Vec<f32> {
            let mut x: Vec<f32> = qkv
                .chunks(w)
                .flat_map(|row| &row[from..from + width])
                .copied()
                .collect();
            if let Some(b) = &self.bias {
                let b = &b[from..from + width];
                x.chunks_mut(width)
                    .for_each(|row| row.iter_mut().zip(b).for_each(|(x, b)| *x += b));
            }
            x
        };
        let (mut q, mut k, v) = (part(0, qd), part(qd, kvd), part(qd + kvd, kvd));
        self.rope.apply(&mut q, self.shape.n_heads);
        self.rope.apply(&mut k, self.shape.n_kv_heads);
        if let Some(rows) = &self.keep {
            q = gather(&q, rows, qd);
        }
        let (k, v) = match &self.frozen {
            Some(f) => (
                scatter(f.k.clone(), &k, &f.live, kvd),
                scatter(f.v.clone(), &v, &f.live, kvd),
            ),
            None => (k, v),
        };
        let inputs = AttnInputs {
            q: &q,
            k: &k,
            v: &v,
            mask: &self.mask,
            shape: self.shape,
            head_scale: self.mask.layer_key_scale(self.layer),
        };
        let (out, lse) = attention_forward(&inputs);
        let nq = self.mask.len();
        *self.saved.lock().map_err(poisoned)? = Some(Saved { q, k, v, lse });
        Ok((CpuStorage::F32(out), Shape::from((nq, qd))))
    }

    /// The attention backward gives dq (kept rows), dk and dv (every key row); the q|k|v
    /// gradient takes the live rows of dk, dv, puts dq back at its rows, and undoes the
    /// rotation (its transpose) on the q and k parts.
    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (t, w) = arg.dims2()?;
        let flat = |x: &Tensor| x.flatten_all()?.to_vec1::<f32>();
        let d = self.backward(t, &flat(res)?, &flat(grad)?)?;
        Ok(Some(Tensor::from_vec(d, (t, w), arg.device())?))
    }
}

impl QkvAttention {
    /// The gradient of the q|k|v input [t, qd + 2·kvd] from the forward's output `out` and its
    /// gradient `dout` [rows, qd] (the forward's saved state is consumed).
    pub fn backward(&self, t: usize, out: &[f32], dout: &[f32]) -> candle_core::Result<Vec<f32>> {
        let Some(saved) = self.saved.lock().map_err(poisoned)?.take() else {
            candle_core::bail!("qkv attention: backward without a forward, or twice")
        };
        let (qd, kvd) = self.widths();
        let head_scale = self.mask.layer_key_scale(self.layer);
        let inputs = AttnInputs {
            q: &saved.q,
            k: &saved.k,
            v: &saved.v,
            mask: &self.mask,
            shape: self.shape,
            head_scale,
        };
        let AttnGrads { dq, dk, dv, dhead } = attention_backward(&inputs, out, &saved.lse, dout);
        if let (Some(sink), false) = (&self.head_grad, head_scale.is_empty()) {
            let mut sink = sink.lock().map_err(poisoned)?;
            let at = self.layer * dhead.len();
            if sink.len() < at + dhead.len() {
                candle_core::bail!("qkv attention: no room for layer {}'s key factor gradient", self.layer);
            }
            sink[at..at + dhead.len()]
                .iter_mut()
                .zip(&dhead)
                .for_each(|(a, b)| *a += b);
        }
        let (mut dk, dv) = match &self.frozen {
            Some(f) => (gather(&dk, &f.live, kvd), gather(&dv, &f.live, kvd)),
            None => (dk, dv),
        };
        let mut dq = match &self.keep {
            Some(rows) => scatter(vec![0f32; t * qd], &dq, rows, qd),
            None => dq,
        };
        let inverse = self.rope.inverse();
        inverse.apply(&mut dq, self.shape.n_heads);
        inverse.apply(&mut dk, self.shape.n_kv_heads);
        let mut d = Vec::with_capacity(t * (qd + 2 * kvd));
        for r in 0..t {
            d.extend_from_slice(&dq[r * qd..(r + 1) * qd]);
            d.extend_from_slice(&dk[r * kvd..(r + 1) * kvd]);
            d.extend_from_slice(&dv[r * kvd..(r + 1) * kvd]);
        }
        Ok(d)
    }
}
