//! The prompt layout shared by every method (DESIGN §4): chat template, instruction,
//! passages, question; split into preamble, one segment per document, and task prompt.

use crate::data::Document;
use crate::model::Model;
use anyhow::Result;

/// Instruction before the passages.
pub const INSTRUCTION: &str = "Read the passages below and answer the question after them. Give only the answer, \
in at most five words, without repeating the question.\n\nPassages:\n";
/// Task used in place of the question lines when a sample has no question.
pub const SUMMARY_TASK: &str = "Write a short summary of the passages.";

/// Token ids of one request's segments. `full` prefills their concatenation; packet methods
/// reuse the preamble and documents and prefill only `prompt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    /// Template prefix (system prompt, user header) + instruction, BOS first if the model adds one.
    pub preamble: Vec<u32>,
    /// One entry per document: the tokens of `"{title}\n{text}\n\n"`, no BOS.
    pub docs: Vec<Vec<u32>>,
    /// `Question: …\nAnswer:` (or the summary task) + end of user turn + assistant header.
    pub prompt: Vec<u32>,
    /// True when the task is the summary instruction (no question): the answer is then the
    /// whole generated text, not its first line.
    pub summary: bool,
}

impl Segments {
    /// All token ids in order.
    pub fn concat(&self) -> Vec<u32> {
        let mut v = self.preamble.clone();
        self.docs.iter().for_each(|d| v.extend(d));
        v.extend(&self.prompt);
        v
    }

    /// Document tokens in total.
    pub fn doc_tokens(&self) -> usize {
        self.docs.iter().map(|d| d.len()).sum()
    }
}

/// The text a document contributes (and the text its packet is built from).
pub fn document_text(doc: &Document) -> String {
    if doc.title.is_empty() {
        format!("{}\n\n", doc.text)
    } else {
        format!("{}\n{}\n\n", doc.title, doc.text)
    }
}

/// The text of the task prompt's first part.
pub fn task_text(question: &str) -> String {
    if question.trim().is_empty() {
        SUMMARY_TASK.to_string()
    } else {
        format!("Question: {question}\nAnswer:")
    }
}

/// Tokens of the preamble for `model` (template prefix + instruction), with the template's
/// default system prompt or `system` in its place.
pub fn preamble_tokens(model: &Model, system: Option<&str>) -> Result<Vec<u32>> {
    let (pre, _) = model.chat_template()?.split_with_system(system)?;
    model.encode_prompt(&format!("{pre}{INSTRUCTION}"))
}

/// Tokens of one document.
pub fn document_tokens(model: &Model, doc: &Document) -> Result<Vec<u32>> {
    model.tokenizer.encode(&document_text(doc))
}

/// Splits a request into segments with the model's own chat template.
pub fn segments(model: &Model, docs: &[Document], question: &str) -> Result<Segments> {
    segments_with_system(model, docs, question, None)
}

/// [`segments`] with a system message of the caller's instead of the template's default.
pub fn segments_with_system(
    model: &Model,
    docs: &[Document],
    question: &str,
    system: Option<&str>,
) -> Result<Segments> {
    let (_, post) = model.chat_template()?.split_with_system(system)?;
    Ok(Segments {
        preamble: preamble_tokens(model, system)?,
        docs: docs.iter().map(|d| document_tokens(model, d)).collect::<Result<_>>()?,
        prompt: model.tokenizer.encode(&format!("{}{post}", task_text(question)))?,
        summary: question.trim().is_empty(),
    })
}
