//! The student: one sequence `preamble, [H;D1;T], …, [H;Dk;T]` and one tail per question (task
//! prompt + teacher tokens), each tail seeing the documents and itself only,
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

/// Loss value and gradients of one sample: d loss / d header [N_h·d], / d trailer [N_t·d] and
/// / d the adapter's per-head key factors (laid out like them; empty when it has none).
/// The loss is the sum over the sample's questions.
pub struct StudentGrad {
    /// The loss, summed over the sample's questions.
    pub loss: f32,
    /// d loss / d header [N_h·d].
    pub header: Vec<f32>,
    /// d loss / d trailer [N_t·d] (zeros when the trailer is frozen).
    pub trailer: Vec<f32>,
    /// d loss / d bridge [N_b·d].
    pub bridge: Vec<f32>,
    /// d loss / d per-head key factors (empty when the adapter has none).
    pub head_key_scale: Vec<f32>,
    /// Questions the loss sums over.
    pub questions: usize,
    /// Rows of the student's sequence (documents with their adapter rows, and every tail).
    pub rows: usize,
}

/// Per-position losses [G] of student logits [G, V] against the teacher's top-k outputs.
fn per_position_loss(logits: &Tensor, teacher: &TeacherOut, kind: LossKind) -> Result<Tensor> {
    let dev = Device::Cpu;
    let g = teacher.tokens.len();
    let lq = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(if kind == LossKind::Ce {
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
    })
}

/// Loss of student logits [G, V] against the teacher's top-k outputs: the per-position losses
/// summed, the first position's multiplied by `first_weight` (1: plain sum).
pub fn loss_from_logits(logits: &Tensor, teacher: &TeacherOut, kind: LossKind, first_weight: f32) -> Result<Tensor> {
    weighted_loss(logits, teacher, kind, &[0], first_weight)
}

/// The per-position losses summed, those at `firsts` (each question's first answer position)
/// multiplied by `first_weight`.
fn weighted_loss(
    logits: &Tensor,
    teacher: &TeacherOut,
    kind: LossKind,
    firsts: &[usize],
    first_weight: f32,
) -> Result<Tensor> {
    let g = teacher.tokens.len();
    let mut weights = vec![1f32; g];
    for &f in firsts {
        weights[f] = first_weight;
    }
    Ok((per_position_loss(logits, teacher, kind)? * Tensor::from_vec(weights, g, &Device::Cpu)?)?.sum_all()?)
}

/// How the student runs: the loss, per-layer recomputation, and which adapter rows learn.
#[derive(Debug, Clone, Copy)]
pub struct StudentMode {
    /// The distillation loss.
    pub loss: LossKind,
    /// Per-layer recomputation: one more forward for less memory.
    pub grad_checkpoint: bool,
    /// Train only the trailer: the header stays as it is, so every `[H; D]` row is a constant
    /// computed by one inference forward and only the trailer and prompt rows take the
    /// differentiable path. Same loss and trailer gradient as the full path.
    pub freeze_header: bool,
    /// Train neither header nor trailer (with `freeze_header`): every packet row is a constant
    /// and only the tails (the bridge, prompt and teacher rows) take the differentiable path.
    /// Same loss and bridge gradient as the full path.
    pub freeze_trailer: bool,
    /// Weight of each question's first teacher token's loss (the others weigh 1).
    pub first_token_weight: f32,
}

/// The student's sequence for one sample: `preamble, [H;D1;T], …, [H;Dk;T]`, then one tail
/// per question: the task prompt with the adapter's bridge rows before or after it, and the
/// teacher tokens. Each tail sits at the positions right after the documents and attends to
/// them and to itself only (`Segment::Branch`), exactly as if it were asked alone. With a
/// context-only header, the k header copies come first instead (`Segment::Context`), each at
/// the positions just before its document's, and only its `[D; T]` block sees it: the tails
/// see `preamble, [D1;T1], …`, the rows a composed cache holds. With a key scale, the tails
/// read the packet rows' keys at that scale (their scores multiplied by it).
struct Sequence {
    x: Tensor,
    positions: Vec<i64>,
    mask: AttnMask,
    /// (first header row, first row of the document's text, tokens) of each document.
    docs: Vec<(usize, usize, usize)>,
    /// First row of the tails.
    tails_start: usize,
    /// First bridge row of each tail.
    bridge_rows: Vec<usize>,
    /// Rows whose logits are scored, in order: the last `scored[j]` rows of each tail j.
    rows: Vec<usize>,
}

fn sequence(
    model: &Model,
    adapter: &Adapter,
    sample: &TrainSample,
    tails: &[Tail],
    scored: &[usize],
) -> Result<Sequence> {
    let (nh, nt) = (adapter.meta.n_header, adapter.meta.n_trailer);
    let kept = adapter.packet_header_rows();
    let seg = segments(model, &sample.docs, "")?;
    let (mut parts, mut segs, mut positions) = (Vec::new(), Vec::new(), Vec::<i64>::new());
    // Context-only headers first: copy i at the positions just before document i's.
    let context_copies = if kept < nh { seg.docs.len() } else { 0 };
    let mut at = seg.preamble.len() as i64;
    for d in seg.docs.iter().take(context_copies) {
        parts.push(adapter.header.clone());
        segs.push(Segment::Context(nh));
        positions.extend(at - nh as i64..at);
        at += (d.len() + nt) as i64;
    }
    let mut row = context_copies * nh;
    parts.push(model.embed(&seg.preamble)?);
    segs.push(Segment::Global(seg.preamble.len()));
    row += seg.preamble.len();
    let docs_from = row;
    let mut docs = Vec::with_capacity(seg.docs.len());
    for (i, d) in seg.docs.iter().enumerate() {
        let block = kept + d.len() + nt;
        if kept < nh {
            parts.extend([model.embed(d)?, adapter.trailer.clone()]);
            segs.push(Segment::Conditioned(block, i));
            docs.push((i * nh, row, d.len()));
        } else {
            parts.extend([adapter.header.clone(), model.embed(d)?, adapter.trailer.clone()]);
            segs.push(Segment::Isolated(block));
            docs.push((row, row + nh, d.len()));
        }
        row += block;
    }
    let docs_end = row;
    positions.extend(0..(seg.preamble.len() + seg.docs.iter().map(|d| kept + d.len() + nt).sum::<usize>()) as i64);
    let at = positions.len() - context_copies * nh;
    let mut rows = Vec::new();
    let mut bridge_rows = Vec::with_capacity(tails.len());
    let mut end = row;
    for (tail, &g) in tails.iter().zip(scored) {
        let (x, bridge_at) = adapter.question_tail(model, &tail.prompt, &tail.rest)?;
        let len = x.dim(0)?;
        ensure!(g <= len, "a tail of {len} rows cannot score {g} of them");
        parts.push(x);
        segs.push(Segment::Branch(len));
        positions.extend((at..at + len).map(|p| p as i64));
        bridge_rows.push(end + bridge_at);
        end += len;
        rows.extend(end - g..end);
    }
    // A header copy may start before position 0 (a header longer than the preamble): RoPE
    // sees only differences of positions, so the whole sequence moves up by that much.
    let low = positions.iter().copied().min().unwrap_or(0).min(0);
    positions.iter_mut().for_each(|p| *p -= low);
    // A key scale: the tails read the packet rows' keys scaled, as a composed cache stores
    // them; each document computes its own rows unscaled, as `Packet::build` does.
    let mut mask = AttnMask::segments(0, &segs)?;
    if adapter.meta.key_scale != 1.0 || adapter.meta.head_key_scale.is_some() {
        mask = mask.with_key_scale((docs_from, docs_end), docs_end, adapter.meta.key_scale)?;
    }
    if adapter.meta.head_key_scale.is_some() {
        mask = mask.with_head_key_scale(adapter.head_key_scale.clone(), model.config.n_kv_heads)?;
    }
    Ok(Sequence {
        x: Tensor::cat(&parts, 0)?,
        positions,
        mask,
        docs,
        tails_start: docs_end,
        bridge_rows,
        rows,
    })
}

/// A question's tail: its task prompt and, in training, the teacher's tokens after it but the
/// last (the adapter's bridge goes before or after the prompt, see [`Adapter::question_tail`]).
struct Tail {
    prompt: Vec<u32>,
    rest: Vec<u32>,
}

/// The task prompts' tokens of a sample, one per question.
fn prompts(model: &Model, sample: &TrainSample) -> Result<Vec<Vec<u32>>> {
    sample
        .tasks
        .iter()
        .map(|t| Ok(segments(model, &[], t)?.prompt))
        .collect()
}

/// Rows of the student's sequence for one sample and how many of them are scored: the
/// preamble, every `[H; D; T]` block and every question's tail (bridge, prompt and teacher
/// tokens), for an adapter of N_h, N_t and N_b rows.
/// Tokenizes only; what [`student_grad`] will run on, for estimating its memory.
pub fn student_rows(
    model: &Model,
    [n_header, n_trailer, n_bridge]: [usize; 3],
    sample: &TrainSample,
    teachers: &[TeacherOut],
) -> Result<(usize, usize)> {
    let seg = segments(model, &sample.docs, "")?;
    let docs: usize = seg.docs.iter().map(|d| n_header + d.len() + n_trailer).sum();
    let prompts: usize = prompts(model, sample)?.iter().map(|p| n_bridge + p.len()).sum();
    let scored: usize = teachers.iter().map(|t| t.tokens.len()).sum();
    Ok((
        seg.preamble.len() + docs + prompts + scored.saturating_sub(teachers.len()),
        scored,
    ))
}

/// Runs the student on one sample (every question over one pass of its documents) and returns
/// its loss, summed over the questions, and the adapter's gradients (the header's are zero
/// with `freeze_header`, the trailer's with `freeze_trailer`). Equals the sum of separate runs,
/// one per question.
pub fn student_grad(
    model: &Model,
    adapter: &Adapter,
    sample: &TrainSample,
    teachers: &[TeacherOut],
    mode: StudentMode,
) -> Result<StudentGrad> {
    let (nh, nt, nb) = (adapter.meta.n_header, adapter.meta.n_trailer, adapter.meta.n_bridge);
    ensure!(
        mode.freeze_header || !mode.freeze_trailer,
        "a frozen trailer needs a frozen header (the header's gradient runs through every row)"
    );
    ensure!(
        teachers.len() == sample.tasks.len() && !teachers.is_empty(),
        "{} teacher outputs for {} questions",
        teachers.len(),
        sample.tasks.len()
    );
    ensure!(
        teachers.iter().all(|t| !t.tokens.is_empty()),
        "the teacher produced no tokens"
    );
    let tails: Vec<Tail> = prompts(model, sample)?
        .into_iter()
        .zip(teachers)
        .map(|(prompt, t)| Tail {
            prompt,
            rest: t.tokens[..t.tokens.len() - 1].to_vec(),
        })
        .collect();
    let scored: Vec<usize> = teachers.iter().map(|t| t.tokens.len()).collect();
    let sq = sequence(model, adapter, sample, &tails, &scored)?;
    let teacher = TeacherOut::concat(teachers);
    let firsts: Vec<usize> = scored
        .iter()
        .scan(0, |at, &g| {
            let f = *at;
            *at += g;
            Some(f)
        })
        .collect();
    let loss = |l: &Tensor| weighted_loss(l, &teacher, mode.loss, &firsts, mode.first_token_weight);
    let n = sq.x.dim(0)?;
    let d = model.config.hidden_size;
    let mut header = vec![0f32; nh * d];
    let mut trailer = vec![0f32; nt * d];
    let mut bridge = vec![0f32; nb * d];
    let add = |acc: &mut [f32], grad: &[f32], row: usize, rows: usize| {
        acc.iter_mut()
            .zip(&grad[row * d..(row + rows) * d])
            .for_each(|(a, b)| *a += b);
    };
    let questions = teachers.len();
    if !mode.freeze_header {
        let g = model.loss_and_input_grad(
            &sq.x,
            &sq.positions,
            &Arc::new(sq.mask),
            &sq.rows,
            &loss,
            mode.grad_checkpoint,
            None,
        )?;
        let grad = g.x.flatten_all()?.to_vec1::<f32>()?;
        for &(h, s, len) in &sq.docs {
            add(&mut header, &grad, h, nh);
            add(&mut trailer, &grad, s + len, nt);
        }
        for &b in &sq.bridge_rows {
            add(&mut bridge, &grad, b, nb);
        }
        return Ok(StudentGrad {
            loss: g.loss,
            header,
            trailer,
            bridge,
            head_key_scale: g.head_key_scale,
            questions,
            rows: n,
        });
    }
    // Frozen header: the constant rows' K,V from one inference forward over the whole sequence,
    // then the differentiable path over the trailers (unless frozen too) and the tails only.
    let mut cache = model.new_cache(n);
    model.forward(
        Input::Embeddings(&sq.x),
        &sq.positions,
        &sq.mask,
        &mut cache,
        &Rows::None,
    )?;
    let tails_start = sq.tails_start;
    let mut live: Vec<usize> = if mode.freeze_trailer {
        Vec::new()
    } else {
        sq.docs.iter().flat_map(|&(_, s, len)| s + len..s + len + nt).collect()
    };
    live.extend(tails_start..n);
    let ids = Tensor::new(live.iter().map(|&r| r as u32).collect::<Vec<_>>(), sq.x.device())?;
    let live_pos: Vec<i64> = live.iter().map(|&r| sq.positions[r]).collect();
    let live_mask = Arc::new(sq.mask.select_rows(&live)?);
    let shift = tails_start - (live.len() - (n - tails_start));
    let rows: Vec<usize> = sq.rows.iter().map(|&r| r - shift).collect();
    let frozen = FrozenKv {
        cache: &cache,
        live: &live,
    };
    let g = model.loss_and_input_grad(
        &sq.x.index_select(&ids, 0)?,
        &live_pos,
        &live_mask,
        &rows,
        &loss,
        mode.grad_checkpoint,
        Some(&frozen),
    )?;
    let grad = g.x.flatten_all()?.to_vec1::<f32>()?;
    if !mode.freeze_trailer {
        for i in 0..sq.docs.len() {
            add(&mut trailer, &grad, i * nt, nt);
        }
    }
    for &b in &sq.bridge_rows {
        add(&mut bridge, &grad, b - shift, nb);
    }
    Ok(StudentGrad {
        loss: g.loss,
        header,
        trailer,
        bridge,
        head_key_scale: g.head_key_scale,
        questions,
        rows: n,
    })
}

/// First-answer-token KL(teacher ‖ student) of every question of a sample, from one inference
/// forward of the student (what the evaluation's first-token KL measures, against the
/// teacher's top-k outputs). Used to pick the best checkpoint on held-out samples.
pub fn first_token_kl(
    model: &Model,
    adapter: &Adapter,
    sample: &TrainSample,
    teachers: &[TeacherOut],
) -> Result<Vec<f32>> {
    ensure!(teachers.len() == sample.tasks.len(), "one teacher output per question");
    let tails: Vec<Tail> = prompts(model, sample)?
        .into_iter()
        .map(|prompt| Tail {
            prompt,
            rest: Vec::new(),
        })
        .collect();
    let sq = sequence(model, adapter, sample, &tails, &vec![1; tails.len()])?;
    let mut cache = model.new_cache(sq.x.dim(0)?);
    let logits = model
        .forward(
            Input::Embeddings(&sq.x),
            &sq.positions,
            &sq.mask,
            &mut cache,
            &Rows::Some(sq.rows),
        )?
        .expect("one row per question");
    let firsts: Vec<TeacherOut> = teachers
        .iter()
        .map(|t| TeacherOut {
            tokens: t.tokens[..1].to_vec(),
            top_ids: t.top_ids[..1].to_vec(),
            top_logp: t.top_logp[..1].to_vec(),
        })
        .collect();
    Ok(per_position_loss(&logits, &TeacherOut::concat(&firsts), LossKind::Kl)?.to_vec1::<f32>()?)
}
