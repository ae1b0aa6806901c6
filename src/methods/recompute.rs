//! Recompute baselines over plain packets (DESIGN §3): CacheBlend (select tokens by their
//! layer-1 KV deviation), EPIC (first k tokens of every document but the first) and a random
//! control. Selected tokens are recomputed through the layers at their global positions and
//! their K,V spliced into the composed cache.

use super::{DocSpan, Method, Prefilled, Repair, Resources, Segments, compose_and_prefill, layer_flops};
use crate::adapter::Adapter;
use crate::model::{KvCache, Model};
use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Which document tokens to recompute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection {
    /// CacheBlend: recompute layer 1 for every document token, keep the top `ratio` by the
    /// squared L2 distance between cached and recomputed K,V there, recompute those onwards.
    CacheBlend(f64),
    /// EPIC: the first `k` tokens of every document except the first.
    Epic(usize),
    /// A seeded random `ratio` of the document tokens.
    Random(f64, u64),
}

/// A recompute method: over plain (no adapter) packets, the baselines; over adapter packets,
/// a step from zero recomputation towards `full`.
pub struct Recompute {
    /// Which document tokens are recomputed.
    pub selection: Selection,
    adapter: Adapter,
    /// Name prefix: empty for the baselines, `kvpacket+` (or `kvpacket:NAME+`) on adapter packets.
    prefix: String,
}

impl Recompute {
    /// The baseline for `selection` on `model` (packets without adapter).
    pub fn new(model: &Model, selection: Selection) -> Result<Self> {
        match selection {
            Selection::CacheBlend(r) | Selection::Random(r, _) if !(0.0..=1.0).contains(&r) => {
                bail!("recompute ratio {r} must be within 0..1")
            }
            _ => Ok(Self {
                selection,
                adapter: Adapter::empty(model)?,
                prefix: String::new(),
            }),
        }
    }

    /// `selection` applied to packets built with `adapter` (named `{label}+{selection}`): only
    /// document tokens are candidates (the adapter's rows stay as packed); EPIC's first K
    /// tokens are the first K after each header.
    pub fn on_packets(adapter: Adapter, label: &str, selection: Selection) -> Self {
        Self {
            selection,
            adapter,
            prefix: format!("{label}+"),
        }
    }
}

impl Method for Recompute {
    fn name(&self) -> String {
        let sel = match self.selection {
            Selection::CacheBlend(r) => format!("cacheblend:{r}"),
            Selection::Epic(k) => format!("epic:{k}"),
            Selection::Random(r, _) => format!("random:{r}"),
        };
        format!("{}{sel}", self.prefix)
    }

    fn packet_adapter(&self) -> Option<Adapter> {
        Some(self.adapter.clone())
    }

    fn prefill(&self, engine: &Resources, seg: &Segments) -> Result<Prefilled> {
        compose_and_prefill(engine, seg, &self.adapter, Some(self))
    }
}

fn take(n: usize, ratio: f64) -> usize {
    ((n as f64 * ratio).round() as usize).min(n)
}

impl Repair for Recompute {
    fn repair(&self, m: &Model, cache: &mut KvCache, docs: &[DocSpan]) -> Result<(usize, f64)> {
        let all: Vec<(usize, u32)> = docs
            .iter()
            .flat_map(|d| d.tokens.iter().enumerate().map(move |(i, &t)| (d.start + i, t)))
            .collect();
        let cfg = &m.config;
        let mut flops = 0.0;
        let (mut rows, start_layer, mut x): (Vec<(usize, u32)>, usize, Option<candle_core::Tensor>) =
            match self.selection {
                Selection::Epic(k) => {
                    let rows = docs
                        .iter()
                        .skip(1)
                        .flat_map(|d| d.tokens.iter().take(k).enumerate().map(move |(i, &t)| (d.start + i, t)))
                        .collect();
                    (rows, 0, None)
                }
                Selection::Random(r, seed) => {
                    let mut v = all.clone();
                    v.shuffle(&mut StdRng::seed_from_u64(seed));
                    v.truncate(take(all.len(), r));
                    (v, 0, None)
                }
                Selection::CacheBlend(r) => {
                    let n = take(all.len(), r);
                    if n == 0 || all.is_empty() {
                        return Ok((0, 0.0));
                    }
                    let idx: Vec<usize> = all.iter().map(|a| a.0).collect();
                    let before_k: Vec<f32> = idx
                        .iter()
                        .flat_map(|&i| cache.layer(0).k[i * cache.row()..(i + 1) * cache.row()].to_vec())
                        .collect();
                    let before_v: Vec<f32> = idx
                        .iter()
                        .flat_map(|&i| cache.layer(0).v[i * cache.row()..(i + 1) * cache.row()].to_vec())
                        .collect();
                    let toks: Vec<u32> = all.iter().map(|a| a.1).collect();
                    let pos: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                    let h1 = m.recompute_rows(&m.embed(&toks)?, &idx, &pos, cache, 0..1)?;
                    flops += idx.iter().map(|&i| layer_flops(cfg, i)).sum::<f64>();
                    let row = cache.row();
                    let mut dev: Vec<(f32, usize)> = idx
                        .iter()
                        .enumerate()
                        .map(|(j, &i)| {
                            let l = cache.layer(0);
                            let d: f32 = (0..row)
                                .map(|c| {
                                    (l.k[i * row + c] - before_k[j * row + c]).powi(2)
                                        + (l.v[i * row + c] - before_v[j * row + c]).powi(2)
                                })
                                .sum();
                            (d, j)
                        })
                        .collect();
                    dev.sort_by(|a, b| b.0.total_cmp(&a.0));
                    let mut keep: Vec<usize> = dev[..n].iter().map(|d| d.1).collect();
                    keep.sort_unstable();
                    let ids = candle_core::Tensor::new(
                        keep.iter().map(|&j| j as u32).collect::<Vec<_>>(),
                        &candle_core::Device::Cpu,
                    )?;
                    let rows = keep.iter().map(|&j| all[j]).collect();
                    (rows, 1, Some(h1.index_select(&ids, 0)?))
                }
            };
        if rows.is_empty() {
            return Ok((0, flops));
        }
        rows.sort_unstable();
        let idx: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let pos: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let input = match x.take() {
            Some(h) => h,
            None => m.embed(&rows.iter().map(|r| r.1).collect::<Vec<_>>())?,
        };
        m.recompute_rows(&input, &idx, &pos, cache, start_layer..cfg.n_layers)?;
        flops += (cfg.n_layers - start_layer) as f64 * idx.iter().map(|&i| layer_flops(cfg, i)).sum::<f64>();
        Ok((rows.len(), flops))
    }
}
