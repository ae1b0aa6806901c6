//! The forward pass: one block function shared by the inference path (KV cache, tiled
//! attention kernel) and the differentiable path (candle graph, attention op with backward,
//! per-layer recomputation).

use super::Model;
use super::attention::{AttnInputs, AttnShape, attention_forward};
use super::block_op::BlockOp;
use super::fused::{MlpOp, RmsNormOp, SwiGluOp};
use super::kv::KvCache;
use super::mask::AttnMask;
use super::qkv_attention::{FrozenLayer, HeadScaleGrad, QkvAttention, gather};
use super::rope::RopeTable;
use anyhow::{Result, bail};
use candle_core::{Tensor, Var};
use std::sync::{Arc, Mutex};

/// What [`Model::loss_and_input_grad`] returns.
pub struct GraphGrad {
    /// The loss value.
    pub loss: f32,
    /// d loss / d input embeddings, shaped like them.
    pub x: Tensor,
    /// d loss / d the mask's per-head key factors, laid out like them (empty: it has none).
    pub head_key_scale: Vec<f32>,
}

/// What the model reads: token ids, or input embeddings [tokens, hidden] (soft tokens).
pub enum Input<'a> {
    /// Token ids, embedded by the model.
    Tokens(&'a [u32]),
    /// Input embeddings [tokens, hidden], e.g. an adapter's soft tokens.
    Embeddings(&'a Tensor),
}

/// Which rows of the new tokens get logits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// No logits (prefill into the cache only).
    None,
    /// The last row's logits.
    Last,
    /// Every row's logits.
    All,
    /// The listed rows' logits, in that order.
    Some(Vec<usize>),
}

impl Rows {
    fn indices(&self, n: usize) -> Vec<usize> {
        match self {
            Rows::None => vec![],
            Rows::Last => n.checked_sub(1).into_iter().collect(),
            Rows::All => (0..n).collect(),
            Rows::Some(v) => v.clone(),
        }
    }
}

/// How one block runs attention.
enum AttnPath<'a> {
    /// Inference: append the new K,V to the cache and attend over it.
    Cache(&'a mut KvCache, &'a AttnMask),
    /// Inference: overwrite the K,V of these cached rows and attend over the cache.
    Overwrite(&'a mut KvCache, &'a AttnMask, &'a [usize]),
    /// Differentiable: attend over this call's own K,V (spliced into the frozen rows' K,V
    /// when given) with the backward-capable op, adding the gradient of the mask's per-head
    /// key factors to the sink when given.
    Graph(&'a Arc<AttnMask>, Option<&'a FrozenKv<'a>>, Option<&'a HeadScaleGrad>),
}

impl AttnPath<'_> {
    /// The attention mask of this call's query rows.
    fn mask(&self) -> &AttnMask {
        match self {
            AttnPath::Graph(m, _, _) => m,
            AttnPath::Cache(_, m) | AttnPath::Overwrite(_, m, _) => m,
        }
    }
}

/// Constant K,V for the rows of a differentiable call that get no gradient. The call's inputs
/// are only the `live` rows (ascending indices into a sequence of `cache.len()` rows); at each
/// layer the attention keys are the cache's rows with the live rows' own K,V in their place,
/// so the call computes exactly what a differentiable call over the whole sequence computes
/// for the live rows, without the frozen rows' forward and backward.
pub struct FrozenKv<'a> {
    /// K,V of every row of the sequence (the live rows' entries are ignored).
    pub cache: &'a KvCache,
    /// The rows given as inputs, ascending.
    pub live: &'a [usize],
}

impl FrozenKv<'_> {
    fn check(&self, n_live: usize) -> Result<()> {
        let ascending = self.live.windows(2).all(|w| w[0] < w[1]);
        if self.live.len() != n_live || !ascending || self.live.last().is_some_and(|&r| r >= self.cache.len()) {
            bail!(
                "frozen K,V: {n_live} inputs need as many ascending live rows below {}",
                self.cache.len()
            );
        }
        Ok(())
    }

    /// Layer `l`'s K,V of the whole sequence (copied) and the live rows, for the attention op.
    fn layer(&self, l: usize) -> FrozenLayer {
        let lay = self.cache.layer(l);
        let n = self.cache.len() * self.cache.row();
        FrozenLayer {
            k: lay.k[..n].to_vec(),
            v: lay.v[..n].to_vec(),
            live: self.live.to_vec(),
        }
    }
}

impl Model {
    fn attn_shape(&self) -> AttnShape {
        let c = &self.config;
        AttnShape {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
        }
    }

    /// The rows of `n` that block `l` must output (None: all, in order): every block but the
    /// last, which needs only the rows whose logits are asked for. A call for K,V only (no
    /// rows) or for every row in order keeps them all.
    fn last_block_keep<'r>(&self, l: usize, n: usize, rows: &'r [usize]) -> Option<&'r [usize]> {
        let all_in_order = rows.len() == n && rows.iter().enumerate().all(|(i, &r)| i == r);
        (l + 1 == self.config.n_layers && !rows.is_empty() && !all_in_order).then_some(rows)
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor, graph: bool) -> Result<Tensor> {
        let eps = self.config.rms_norm_eps;
        Ok(if graph {
            x.apply_op1(RmsNormOp::new(w, eps)?)?
        } else {
            candle_nn::ops::rms_norm(x, w, eps)?
        })
    }

    /// Token embeddings [tokens, hidden] for the given ids; errors on an id outside the vocabulary.
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.config.vocab_size) {
            bail!("token id {t} is outside the vocabulary ({})", self.config.vocab_size);
        }
        let ids = Tensor::new(tokens, &candle_core::Device::Cpu)?;
        Ok(self.weights.embed.index_select(&ids, 0)?)
    }

    /// The rotary table for explicit per-token positions.
    pub fn rope_table(&self, positions: &[i64]) -> RopeTable {
        RopeTable::new(&self.inv_freqs, positions, self.config.rope_interleaved)
    }

    /// One transformer block over `x` [t, hidden]. K,V are computed for every row; with `keep`,
    /// only those rows' queries, attention output and MLP are computed and the result is
    /// [keep.len(), hidden] (the last block, whose other rows no logit needs).
    fn block(
        &self,
        l: usize,
        x: &Tensor,
        rope: &Arc<RopeTable>,
        path: &mut AttnPath,
        keep: Option<&[usize]>,
    ) -> Result<Tensor> {
        let kept_mask = keep.map(|rows| path.mask().select_rows(rows)).transpose()?;
        let (cache, mask, rows_to_write) = match path {
            AttnPath::Graph(mask, frozen, sink) => {
                let mask = kept_mask.map_or_else(|| Arc::clone(mask), Arc::new);
                return self.block_graph(l, x, rope, mask, *frozen, *sink, keep);
            }
            AttnPath::Cache(cache, mask) => (cache, mask, None),
            AttnPath::Overwrite(cache, mask, rows) => (cache, mask, Some(*rows)),
        };
        let c = &self.config;
        let w = &self.weights.layers[l];
        let (qd, kvd) = (c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
        let h = self.rms_norm(x, &w.attn_norm, false)?;
        let mut qkv = w.qkv.forward(&h)?;
        if let Some(b) = &w.qkv_bias {
            qkv = qkv.broadcast_add(b)?;
        }
        let part = |from: usize, width: usize, heads: usize, rotate: bool| -> Result<Vec<f32>> {
            let mut x = qkv.narrow(1, from, width)?.flatten_all()?.to_vec1::<f32>()?;
            if rotate {
                rope.apply(&mut x, heads);
            }
            Ok(x)
        };
        let (kv, vv) = (
            part(qd, kvd, c.n_kv_heads, true)?,
            part(qd + kvd, kvd, c.n_kv_heads, false)?,
        );
        match rows_to_write {
            None => cache.push_layer(l, &kv, &vv),
            Some(rows) => cache.overwrite_rows(l, rows, &kv, &vv),
        }
        let mut qv = part(0, qd, c.n_heads, true)?;
        if let Some(rows) = keep {
            qv = gather(&qv, rows, qd);
        }
        let lay = cache.layer(l);
        let mask = kept_mask.as_ref().unwrap_or(mask);
        let inputs = AttnInputs {
            q: &qv,
            k: &lay.k,
            v: &lay.v,
            mask,
            shape: self.attn_shape(),
            head_scale: mask.layer_key_scale(l),
        };
        let (out, _) = attention_forward(&inputs);
        let att = Tensor::from_vec(out, (qv.len() / qd, qd), x.device())?;
        let x = match keep {
            None => x.clone(),
            Some(rows) => x.index_select(
                &Tensor::new(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), x.device())?,
                0,
            )?,
        };
        let x = (x + w.o.forward(&att)?)?;
        let h = self.rms_norm(&x, &w.ffn_norm, false)?;
        let mlp = w.down.forward(&w.gate_up.forward(&h)?.apply_op1_no_bwd(&SwiGluOp)?)?;
        Ok((x + mlp)?)
    }

    /// The block on the differentiable path: one [`BlockOp`] (`mask` already of the kept rows).
    #[allow(clippy::too_many_arguments)]
    fn block_graph(
        &self,
        l: usize,
        x: &Tensor,
        rope: &Arc<RopeTable>,
        mask: Arc<AttnMask>,
        frozen: Option<&FrozenKv>,
        head_grad: Option<&HeadScaleGrad>,
        keep: Option<&[usize]>,
    ) -> Result<Tensor> {
        let w = &self.weights.layers[l];
        let dense = |lin: &super::weights::Linear| {
            lin.frozen()
                .ok_or_else(|| anyhow::anyhow!("the differentiable path needs f32 weights"))
        };
        let eps = self.config.rms_norm_eps;
        let bias = w.qkv_bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        let keep = keep.map(<[usize]>::to_vec);
        let attn = QkvAttention::new(
            bias,
            rope.clone(),
            mask,
            self.attn_shape(),
            keep.clone(),
            frozen.map(|f| f.layer(l)),
        )
        .at_layer(l, head_grad.cloned());
        let op = BlockOp::new(
            RmsNormOp::new(&w.attn_norm, eps)?,
            dense(&w.qkv)?,
            attn,
            dense(&w.o)?,
            RmsNormOp::new(&w.ffn_norm, eps)?,
            MlpOp::new(&dense(&w.gate_up)?, &dense(&w.down)?)?,
            keep,
        );
        Ok(x.apply_op1(op)?)
    }

    /// Logits of the last block's output (already only the rows asked for).
    fn head(&self, x: &Tensor, graph: bool) -> Result<Tensor> {
        let x = self.rms_norm(x, &self.weights.norm, graph)?;
        if graph {
            self.weights.lm_head.forward_graph(&x)
        } else {
            self.weights.lm_head.forward(&x)
        }
    }

    fn check_call(&self, n: usize, positions: &[i64], mask: &AttnMask, n_past: usize) -> Result<()> {
        if positions.len() != n || mask.len() != n {
            bail!(
                "forward: {n} tokens but {} positions and {} mask rows",
                positions.len(),
                mask.len()
            );
        }
        if mask.max_key() > n_past + n {
            bail!(
                "forward: mask reads key {} but only {} exist",
                mask.max_key(),
                n_past + n
            );
        }
        if let Some((layers, heads)) = mask.head_key_scale_shape()
            && (layers, heads) != (self.config.n_layers, self.config.n_kv_heads)
        {
            bail!(
                "forward: the mask has key factors for {layers} layers of {heads} kv heads, the model {} of {}",
                self.config.n_layers,
                self.config.n_kv_heads
            );
        }
        if let Some(&p) = positions
            .iter()
            .find(|&&p| p < 0 || p as usize >= self.config.max_position_embeddings)
        {
            bail!(
                "position {p} is outside the model's context of {}",
                self.config.max_position_embeddings
            );
        }
        Ok(())
    }

    fn input_tensor(&self, input: &Input) -> Result<Tensor> {
        match input {
            Input::Tokens(t) => self.embed(t),
            Input::Embeddings(e) => {
                if e.rank() != 2 || e.dim(1)? != self.config.hidden_size {
                    bail!(
                        "input embeddings must be [tokens, {}], got {:?}",
                        self.config.hidden_size,
                        e.dims()
                    );
                }
                Ok((*e).clone())
            }
        }
    }

    /// Inference forward: runs the new tokens at the given positions with `mask` (key indices
    /// count the cache first, then the new tokens), appends their K,V to `cache`, and returns
    /// logits [rows, vocab] for the requested rows (None for `Rows::None`).
    pub fn forward(
        &self,
        input: Input,
        positions: &[i64],
        mask: &AttnMask,
        cache: &mut KvCache,
        rows: &Rows,
    ) -> Result<Option<Tensor>> {
        let mut x = self.input_tensor(&input)?;
        let n = x.dim(0)?;
        self.check_call(n, positions, mask, cache.len())?;
        cache.reserve(n)?;
        let rope = Arc::new(self.rope_table(positions));
        let rows = rows.indices(n);
        let mut path = AttnPath::Cache(cache, mask);
        for l in 0..self.config.n_layers {
            let keep = self.last_block_keep(l, n, &rows);
            x = self.block(l, &x, &rope, &mut path, keep)?;
        }
        cache.commit(n);
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.head(&x, false)?))
    }

    /// Plain causal prefill of `tokens` after whatever the cache holds, at the next positions.
    pub fn prefill(&self, tokens: &[u32], cache: &mut KvCache, rows: &Rows) -> Result<Option<Tensor>> {
        let start = cache.len();
        let positions: Vec<i64> = (start..start + tokens.len()).map(|p| p as i64).collect();
        self.forward(
            Input::Tokens(tokens),
            &positions,
            &AttnMask::causal(start, tokens.len()),
            cache,
            rows,
        )
    }

    /// Prefills input embeddings `x` [n, hidden] (e.g. a prompt with soft rows among its
    /// tokens' embeddings) at the positions after the cache's rows, causally, as
    /// [`Model::prefill`] does token ids.
    pub fn prefill_embeddings(&self, x: &Tensor, cache: &mut KvCache, rows: &Rows) -> Result<Option<Tensor>> {
        let start = cache.len();
        let n = x.dim(0)?;
        let positions: Vec<i64> = (start..start + n).map(|p| p as i64).collect();
        self.forward(
            Input::Embeddings(x),
            &positions,
            &AttnMask::causal(start, n),
            cache,
            rows,
        )
    }

    /// Recomputes the K,V of cached rows `rows` (ascending key indices) through `layers`:
    /// `x` [rows, hidden] is their input to the first layer of the range, `positions` their
    /// positions. At each layer their K,V overwrite the cached ones, and each row attends to
    /// cache keys `[0, row]` (the other rows' current K,V included). Returns their hidden
    /// states after the last layer of the range. Recomputing every row of a context through
    /// all layers reproduces a plain prefill of it.
    pub fn recompute_rows(
        &self,
        x: &Tensor,
        rows: &[usize],
        positions: &[i64],
        cache: &mut KvCache,
        layers: std::ops::Range<usize>,
    ) -> Result<Tensor> {
        let n = x.dim(0)?;
        if rows.len() != n || positions.len() != n || rows.windows(2).any(|w| w[0] >= w[1]) {
            bail!("recompute_rows: {n} inputs need as many ascending rows and positions");
        }
        if rows.last().is_some_and(|&r| r >= cache.len()) || layers.end > self.config.n_layers {
            bail!("recompute_rows: row or layer out of range");
        }
        let mask = AttnMask::from_ranges(rows.iter().map(|&r| (0, r as u32 + 1)).collect())?;
        let rope = Arc::new(self.rope_table(positions));
        let mut x = x.clone();
        for l in layers {
            x = self.block(l, &x, &rope, &mut AttnPath::Overwrite(cache, &mask, rows), None)?;
        }
        Ok(x)
    }

    /// A fresh cache with room for the model's whole context (or `max_tokens` if smaller).
    pub fn new_cache(&self, max_tokens: usize) -> KvCache {
        let c = &self.config;
        KvCache::new(
            c.n_layers,
            c.n_kv_heads * c.head_dim,
            max_tokens.min(c.max_position_embeddings),
        )
    }

    /// Differentiable forward over a whole sequence of input embeddings `x` [tokens, hidden]
    /// (no cache): returns logits [rows, vocab] as part of candle's autograd graph.
    pub fn forward_graph(&self, x: &Tensor, positions: &[i64], mask: &Arc<AttnMask>, rows: &[usize]) -> Result<Tensor> {
        self.check_graph_call(x, positions, mask, None)?;
        self.forward_graph_unchecked(x, positions, mask, rows, None, None)
    }

    fn forward_graph_unchecked(
        &self,
        x: &Tensor,
        positions: &[i64],
        mask: &Arc<AttnMask>,
        rows: &[usize],
        frozen: Option<&FrozenKv>,
        head_grad: Option<&HeadScaleGrad>,
    ) -> Result<Tensor> {
        let rope = Arc::new(self.rope_table(positions));
        let mut x = x.clone();
        for l in 0..self.config.n_layers {
            x = self.block(
                l,
                &x,
                &rope,
                &mut AttnPath::Graph(mask, frozen, head_grad),
                self.last_block_keep(l, x.dim(0)?, rows),
            )?;
        }
        self.head(&x, true)
    }

    fn check_graph_call(
        &self,
        x: &Tensor,
        positions: &[i64],
        mask: &AttnMask,
        frozen: Option<&FrozenKv>,
    ) -> Result<()> {
        self.check_dense()?;
        let n = x.dim(0)?;
        let n_past = match frozen {
            None => 0,
            Some(f) => {
                f.check(n)?;
                f.cache.len() - n
            }
        };
        self.check_call(n, positions, mask, n_past)
    }

    /// Forward and backward of a loss on the logits of `rows`: the loss value, d loss / d x and
    /// d loss / d the mask's per-head key factors ([`AttnMask::with_head_key_scale`]; empty when
    /// it has none). `loss` maps the logits [rows, vocab] to a scalar. With `checkpoint`,
    /// per-layer recomputation: only each block's input is kept and one block's graph at a time
    /// is rebuilt in the backward pass (less memory, one more forward); without it the whole
    /// graph is kept (faster). With `frozen`, `x` holds only the live rows and the others'
    /// K,V are constants (see [`FrozenKv`]).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_input_grad(
        &self,
        x: &Tensor,
        positions: &[i64],
        mask: &Arc<AttnMask>,
        rows: &[usize],
        loss: &dyn Fn(&Tensor) -> Result<Tensor>,
        checkpoint: bool,
        frozen: Option<&FrozenKv>,
    ) -> Result<GraphGrad> {
        self.check_graph_call(x, positions, mask, frozen)?;
        let factors = (0..self.config.n_layers)
            .map(|l| mask.layer_key_scale(l).len())
            .sum::<usize>();
        let sink: Option<HeadScaleGrad> = (factors > 0).then(|| Arc::new(Mutex::new(vec![0f32; factors])));
        let sink = sink.as_ref();
        let done = |value: Tensor, x: Tensor| -> Result<GraphGrad> {
            let head_key_scale = match sink {
                Some(s) => s
                    .lock()
                    .map_err(|_| anyhow::anyhow!("key factor gradient: poisoned"))?
                    .clone(),
                None => Vec::new(),
            };
            Ok(GraphGrad {
                loss: value.to_scalar::<f32>()?,
                x,
                head_key_scale,
            })
        };
        if !checkpoint {
            let xv = Var::from_tensor(x)?;
            let value = loss(&self.forward_graph_unchecked(xv.as_tensor(), positions, mask, rows, frozen, sink)?)?;
            let g = value.backward()?;
            let grad = g.get(xv.as_tensor()).cloned().unwrap_or(x.zeros_like()?);
            return done(value, grad);
        }
        let rope = Arc::new(self.rope_table(positions));
        let mut inputs = vec![x.detach()];
        for l in 0..self.config.n_layers {
            // No sink here: these forwards are never differentiated (the backward rebuilds them).
            let y = self
                .block(
                    l,
                    &inputs[l],
                    &rope,
                    &mut AttnPath::Graph(mask, frozen, None),
                    self.last_block_keep(l, x.dim(0)?, rows),
                )?
                .detach();
            inputs.push(y);
        }
        let last = Var::from_tensor(&inputs[self.config.n_layers])?;
        let value = loss(&self.head(last.as_tensor(), true)?)?;
        let mut grad = value
            .backward()?
            .get(last.as_tensor())
            .cloned()
            .unwrap_or(last.as_tensor().zeros_like()?);
        for l in (0..self.config.n_layers).rev() {
            let xin = Var::from_tensor(&inputs[l])?;
            let keep = self.last_block_keep(l, x.dim(0)?, rows);
            let y = self.block(
                l,
                xin.as_tensor(),
                &rope,
                &mut AttnPath::Graph(mask, frozen, sink),
                keep,
            )?;
            let g = (y * &grad)?.sum_all()?.backward()?;
            grad = g.get(xin.as_tensor()).cloned().unwrap_or(xin.as_tensor().zeros_like()?);
        }
        done(value, grad)
    }

    fn check_dense(&self) -> Result<()> {
        let dense = self
            .weights
            .layers
            .iter()
            .all(|l| l.qkv.is_dense() && l.o.is_dense() && l.gate_up.is_dense() && l.down.is_dense())
            && self.weights.lm_head.is_dense();
        if !dense {
            bail!("the differentiable path needs f32 weights, not the GGUF's quantized ones");
        }
        Ok(())
    }
}
