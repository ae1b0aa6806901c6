//! The student: one sequence `preamble, [H;D1;T], …, [H;Dk;T], task prompt, teacher tokens`
//! with a block-diagonal mask on the differentiable path; loss against the teacher; gradients
//! for the header and trailer only.

use super::samples::TrainSample;
use super::teacher::TeacherOut;
use crate::adapter::Adapter;
use crate::methods::layout::segments;
use crate::model::{AttnMask, FrozenKv, Input, Model, Rows, Segment};
use anyhow::{Result, ensure};
use candle_core::{D, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum LossKind {
    /// Forward KL(teacher ‖ student) over the vocabulary (top-k + one bucket for the rest).
    Kl,
    /// Cross-entropy on the teacher's greedy tokens (ablation).
    Ce,
}

/// Loss value and gradients of one sample: d loss / d header [N_h·d] and / d trailer [N_t·d].
pub struct StudentGrad {
    pub loss: f32,
    pub header: Vec<f32>,
    pub trailer: Vec<f32>,
}

/// Loss of student log-probabilities `lq` [G, V] against the teacher's top-k outputs: the
/// per-position losses summed, the first position's multiplied by `first_weight` (1: plain sum).
pub fn loss_from_logits(logits: &Tensor, teacher: &TeacherOut, kind: LossKind, first_weight: f32) -> Result<Tensor> {
    let dev = Device::Cpu;
    let g = teacher.tokens.len();
    let lq = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let per_position = if kind == LossKind::Ce {
        let t = Tensor::new(teacher.tokens.as_slice(), &dev)?.unsqueeze(1)?;
        lq.gather(&t, 1)?.neg()?.squeeze(1)?
    } else {
        let k = teacher.top_ids[0].len();
        let ids: Vec<u32> = teacher.top_ids.iter().flatten().copied().collect();
        let lp: Vec<f32> = teacher.top_logp.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(ids, (g, k), &dev)?;
        let lp = Tensor::from_vec(lp, (g, k), &dev)?;
        let p = lp.exp()?;
        let lq_top = lq.gather(&ids, 1)?;
        let kl_top = (&p * (&lp - &lq_top)?)?.sum(1)?;
        // The rest of the vocabulary as one bucket on each side.
        let p_rest = (1.0 - p.sum(1)?)?.clamp(0.0, 1.0)?;
        let q_rest = (1.0 - lq_top.exp()?.sum(1)?)?.clamp(1e-12, 1.0)?;
        let kl_rest = (&p_rest * (p_rest.clamp(1e-12, 1.0)?.log()? - q_rest.log()?)?)?;
        (kl_top + kl_rest)?
    };
    let mut weights = vec![1f32; g];
    if let Some(w) = weights.first_mut() {
        *w = first_weight;
    }
    Ok((per_position * Tensor::from_vec(weights, g, &dev)?)?.sum_all()?)
}

/// How the student runs: the loss, per-layer recomputation, and which adapter rows learn.
#[derive(Debug, Clone, Copy)]
pub struct StudentMode {
    pub loss: LossKind,
    /// Per-layer recomputation: one more forward for less memory.
    pub grad_checkpoint: bool,
    /// Train only the trailer: the header stays as it is, so every `[H; D]` row is a constant
    /// computed by one inference forward and only the trailer and prompt rows take the
    /// differentiable path. Same loss and trailer gradient as the full path.
    pub freeze_header: bool,
    /// Weight of the first teacher token's loss (the others weigh 1).
    pub first_token_weight: f32,
}

/// Runs the student on one sample and returns its loss and the adapter's gradients
/// (the header's are zero with `freeze_header`).
pub fn student_grad(
    model: &Model,
    adapter: &Adapter,
    sample: &TrainSample,
    teacher: &TeacherOut,
    mode: StudentMode,
) -> Result<StudentGrad> {
    let (nh, nt) = (adapter.meta.n_header, adapter.meta.n_trailer);
    let g = teacher.tokens.len();
    ensure!(g > 0, "the teacher produced no tokens");
    let seg = segments(model, &sample.docs, &sample.task)?;
    let mut parts = vec![model.embed(&seg.preamble)?];
    let mut segs = vec![Segment::Global(seg.preamble.len())];
    let mut starts = Vec::with_capacity(seg.docs.len());
    let mut at = seg.preamble.len();
    for d in &seg.docs {
        starts.push((at, d.len()));
        parts.extend([adapter.header.clone(), model.embed(d)?, adapter.trailer.clone()]);
        segs.push(Segment::Isolated(nh + d.len() + nt));
        at += nh + d.len() + nt;
    }
    let tail: Vec<u32> = seg.prompt.iter().chain(&teacher.tokens[..g - 1]).copied().collect();
    parts.push(model.embed(&tail)?);
    segs.push(Segment::Global(tail.len()));
    let x = Tensor::cat(&parts, 0)?;
    let n = x.dim(0)?;
    let positions: Vec<i64> = (0..n as i64).collect();
    let mask = AttnMask::segments(0, &segs);
    let loss = |l: &Tensor| loss_from_logits(l, teacher, mode.loss, mode.first_token_weight);
    let d = model.config.hidden_size;
    let mut header = vec![0f32; nh * d];
    let mut trailer = vec![0f32; nt * d];
    let add = |acc: &mut [f32], grad: &[f32], row: usize, rows: usize| {
        acc.iter_mut()
            .zip(&grad[row * d..(row + rows) * d])
            .for_each(|(a, b)| *a += b);
    };
    if !mode.freeze_header {
        let rows: Vec<usize> = (n - g..n).collect();
        let (value, grad) = model.loss_and_input_grad(
            &x,
            &positions,
            &Arc::new(mask),
            &rows,
            &loss,
            mode.grad_checkpoint,
            None,
        )?;
        let grad = grad.flatten_all()?.to_vec1::<f32>()?;
        for &(s, len) in &starts {
            add(&mut header, &grad, s, nh);
            add(&mut trailer, &grad, s + nh + len, nt);
        }
        return Ok(StudentGrad {
            loss: value,
            header,
            trailer,
        });
    }
    // Frozen header: the constant rows' K,V from one inference forward over the whole sequence,
    // then the differentiable path over the trailers and the tail only.
    let mut cache = model.new_cache(n);
    model.forward(Input::Embeddings(&x), &positions, &mask, &mut cache, &Rows::None)?;
    let mut live: Vec<usize> = starts
        .iter()
        .flat_map(|&(s, len)| s + nh + len..s + nh + len + nt)
        .collect();
    live.extend(n - tail.len()..n);
    let ids = Tensor::new(live.iter().map(|&r| r as u32).collect::<Vec<_>>(), x.device())?;
    let live_pos: Vec<i64> = live.iter().map(|&r| r as i64).collect();
    let live_mask = Arc::new(mask.select_rows(&live)?);
    let rows: Vec<usize> = (live.len() - g..live.len()).collect();
    let frozen = FrozenKv {
        cache: &cache,
        live: &live,
    };
    let (value, grad) = model.loss_and_input_grad(
        &x.index_select(&ids, 0)?,
        &live_pos,
        &live_mask,
        &rows,
        &loss,
        mode.grad_checkpoint,
        Some(&frozen),
    )?;
    let grad = grad.flatten_all()?.to_vec1::<f32>()?;
    for i in 0..starts.len() {
        add(&mut trailer, &grad, i * nt, nt);
    }
    Ok(StudentGrad {
        loss: value,
        header,
        trailer,
    })
}
