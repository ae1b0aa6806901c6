//! `kvpacket generate` and `kvpacket tokenize`.

use super::ModelArgs;
use crate::model::Model;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct PromptArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Use the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Read the prompt from this file (UTF-8) instead of the argument.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// The prompt text.
    pub prompt: Option<String>,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Maximum new tokens.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Print one JSON object instead of the text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    pub prompt: PromptArgs,
}

impl PromptArgs {
    /// The prompt's token ids for `model`, chat-templated unless `--raw`.
    fn ids(&self, model: &Model) -> Result<Vec<u32>> {
        let text = match (&self.prompt_file, &self.prompt) {
            (Some(f), _) => {
                let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not valid UTF-8", f.display()))?
            }
            (None, Some(p)) => p.clone(),
            (None, None) => anyhow::bail!("give a prompt (argument or --prompt-file)"),
        };
        let text = if self.raw {
            text
        } else {
            model.chat_template()?.user_turn(&text)?
        };
        model.encode_prompt(&text)
    }
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let model = a.prompt.model.load()?;
    let ids = a.prompt.ids(&model)?;
    let g = model.generate(&ids, a.max_tokens)?;
    if a.json {
        println!("{}", serde_json::to_string(&g)?);
    } else {
        println!("{}", g.text);
        eprintln!(
            "[{} prompt tokens, prefill {:.1} ms, {} new tokens at {:.1} tok/s]",
            g.prompt_tokens.len(),
            g.prefill_ms,
            g.tokens.len(),
            g.decode_tokens_per_s
        );
    }
    Ok(())
}

pub fn tokenize(a: TokenizeArgs) -> Result<()> {
    let model = a.prompt.model.load()?;
    println!("{}", serde_json::to_string(&a.prompt.ids(&model)?)?);
    Ok(())
}
