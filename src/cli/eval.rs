//! `kvpacket eval`: every method on every sample of one or more datasets, resumable, with
//! a summary, a markdown report and plots.

use super::{AdapterChoice, ModelArgs};
use crate::data::load_dataset;
use crate::eval::reference::ReferenceCache;
use crate::eval::report::write_report;
use crate::eval::{Runner, read_records};
use crate::packet::KvDtype;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Datasets: JSON files in the shared format (FILE#A..B: entries A to B-1 only),
    /// synth:biography[:K], synth:biography-heldout[:K] (wordings training never sees) or
    /// synth:niah[:K].
    #[arg(long = "data", required = true)]
    pub data: Vec<String>,
    /// Comma-separated methods: full, full-reversed (documents in reverse order: the noise floor
    /// of fidelity to full), none, question-only, kvpacket (--adapter, else the shipped
    /// default), kvpacket=ADAPTER (a file or shipped name; labelled kvpacket:NAME),
    /// cacheblend:R, epic:K, random:R, and kvpacket[=ADAPTER]+cacheblend:R|+epic:K|+random:R.
    #[arg(long, default_value = "full,none,kvpacket,question-only")]
    pub methods: String,
    #[command(flatten)]
    pub adapter: AdapterChoice,
    /// Samples per dataset (synthetic sets: how many to generate).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Index of the first sample to run (earlier ones are skipped): splits a run across
    /// processes, each with its own --out; their results.jsonl files concatenate into one.
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// Decode length of question answers (DESIGN §4: 32).
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Decode length of summaries, for samples without a question (DESIGN §4: 256).
    #[arg(long, default_value_t = 256)]
    pub summary_tokens: usize,
    /// Seed of the synthetic generators.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "f16")]
    pub kv_dtype: KvDtype,
    /// Output folder: results.jsonl, summary.json, report.md, plots.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let engine = a.model.engine(a.adapter.adapter.as_deref(), a.kv_dtype, 2 << 30)?;
    let model = engine.model();
    let methods = a
        .methods
        .split(',')
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .map(|m| engine.method(m))
        .collect::<Result<Vec<_>, _>>()?;
    let runner = Runner {
        engine: engine.resources(false),
        methods,
        max_new_tokens: a.max_new_tokens,
        summary_tokens: a.summary_tokens,
        out: a.out.clone(),
        progress: true,
        references: Some(ReferenceCache::new(
            &crate::model::fetch::home().join("reference"),
            &format!("{:?}", a.model.weights),
        )),
    };
    for spec in &a.data {
        let (name, samples) = load_dataset(spec, a.limit, a.seed)?;
        runner
            .run_from(&name, &samples, a.start)
            .with_context(|| format!("evaluating {name}"))?;
    }
    let records = read_records(&a.out.join("results.jsonl"))?;
    let header = format!(
        "# kvpacket eval\n\nmodel: `{}` ({})  \ncommand: `kvpacket {}`",
        a.model.model,
        &model.fingerprint[..12],
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let summary = write_report(&a.out, &records, &header)?;
    print!("{}", crate::eval::report::markdown(&summary, &header));
    Ok(())
}
