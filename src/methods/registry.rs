//! Methods by name, one grammar for every client (CLI, evaluation, server):
//! `full`, `full-reversed`, `none`, `question-only`, `kvpacket[=ADAPTER]`, `cacheblend:R`, `epic:K`,
//! `random:R`, and a recompute method on top of adapter packets,
//! `kvpacket[=ADAPTER]+cacheblend:R | +epic:K | +random:R` (a quality dial from zero
//! recomputation towards `full`).

use super::recompute::{Recompute, Selection};
use super::{Full, FullReversed, Method, Packets, QuestionOnly};
use crate::adapter::{Adapter, named};
use crate::model::Model;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The method names [`method_by_name`] understands, for messages.
pub const METHOD_NAMES: &str = "full, full-reversed, none, question-only, kvpacket[=ADAPTER], cacheblend:R, epic:K, random:R, kvpacket[=ADAPTER]+cacheblend:R|+epic:K|+random:R";

/// Parses `cacheblend:R`, `epic:K` or `random:R` (None: not a recompute selection).
fn selection(spec: &str) -> Result<Option<Selection>> {
    let Some((kind, arg)) = spec.split_once(':') else {
        return Ok(None);
    };
    let ratio = || -> Result<f64> {
        match arg.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => bail!("`{spec}`: the recompute ratio must be a number within 0..1"),
        }
    };
    Ok(Some(match kind {
        "cacheblend" => Selection::CacheBlend(ratio()?),
        "random" => Selection::Random(ratio()?, 0),
        "epic" => Selection::Epic(
            arg.parse()
                .ok()
                .with_context(|| format!("`{spec}`: K must be a whole number of tokens ≥ 0"))?,
        ),
        _ => return Ok(None),
    }))
}

/// The adapter and label of `kvpacket` or `kvpacket=ADAPTER` (a file or a shipped name);
/// plain `kvpacket` uses `chosen` (the caller's adapter) or else the model's shipped default.
fn kvpacket_adapter(spec: &str, model: &Model, chosen: Option<&Adapter>) -> Result<(Adapter, String)> {
    let (adapter, label) = match spec.split_once('=') {
        None => {
            let a = match chosen {
                Some(a) => a.clone(),
                None => crate::adapter::shipped(model)?,
            };
            (a, "kvpacket".to_string())
        }
        Some((_, name)) => {
            let stem = Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name);
            (named(model, name)?, format!("kvpacket:{stem}"))
        }
    };
    if adapter.is_empty() {
        bail!("`{spec}` needs a trained adapter, not the empty one (that is the `none` method)");
    }
    Ok((adapter, label))
}

/// Builds the method named `spec` (see the module doc). `adapter` is the caller's adapter
/// choice for plain `kvpacket` (None: the model's shipped default). Unknown names and bad
/// arguments are errors that list the grammar.
pub fn method_by_name(spec: &str, model: &Model, adapter: Option<&Adapter>) -> Result<Box<dyn Method>> {
    Ok(match spec {
        "full" => Box::new(Full),
        "full-reversed" => Box::new(FullReversed),
        "question-only" => Box::new(QuestionOnly),
        "none" => Box::new(Packets::none(model)?),
        s if s == "kvpacket" || s.starts_with("kvpacket=") => {
            if let Some((base, rest)) = s.split_once('+') {
                let (a, label) = kvpacket_adapter(base, model, adapter)?;
                let sel = selection(rest)?.with_context(|| format!("unknown method `{s}` (known: {METHOD_NAMES})"))?;
                Box::new(Recompute::on_packets(a, &label, sel))
            } else {
                let (adapter, label) = kvpacket_adapter(s, model, adapter)?;
                Box::new(Packets { adapter, label })
            }
        }
        s if s.starts_with("kvpacket+") => {
            let (a, label) = kvpacket_adapter("kvpacket", model, adapter)?;
            let rest = &s["kvpacket+".len()..];
            let sel = selection(rest)?.with_context(|| format!("unknown method `{s}` (known: {METHOD_NAMES})"))?;
            Box::new(Recompute::on_packets(a, &label, sel))
        }
        s => match selection(s)? {
            Some(sel) => Box::new(Recompute::new(model, sel)?),
            None => bail!("unknown method `{s}` (known: {METHOD_NAMES})"),
        },
    })
}
