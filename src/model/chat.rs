//! Chat templates: the model's own Jinja template rendered with minijinja.

use anyhow::{Context, Result, anyhow};
use minijinja::{Environment, context};

/// A chat template and the special-token texts it may reference.
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

/// Stands in for the user text so the template can be split around it.
const MARKER: &str = "\u{1}KVPACKET_USER_TEXT\u{1}";

impl ChatTemplate {
    /// Wraps a Jinja template source.
    pub fn new(source: String, bos: String, eos: String) -> Self {
        Self { source, bos, eos }
    }

    fn render(&self, system: Option<&str>, user: &str) -> Result<String> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", &self.source)
            .context("parsing the chat template")?;
        let tmpl = env.get_template("chat")?;
        let mut messages = Vec::new();
        if let Some(sys) = system {
            messages.push(context! { role => "system", content => sys });
        }
        messages.push(context! { role => "user", content => user });
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos.clone(),
            eos_token => self.eos.clone(),
        })
        .map_err(|e| anyhow!("rendering the chat template: {e}"))
    }

    /// The full prompt for one user turn (default system prompt included) with the
    /// generation prompt (assistant header) appended.
    pub fn user_turn(&self, text: &str) -> Result<String> {
        let (pre, post) = self.split()?;
        Ok(format!("{pre}{text}{post}"))
    }

    /// The rendered template split around the user's text: (everything before it, everything
    /// after it up to and including the assistant header).
    pub fn split(&self) -> Result<(String, String)> {
        self.split_with_system(None)
    }

    /// [`ChatTemplate::split`] with a system message of the caller's in place of the
    /// template's default one (None: the default).
    pub fn split_with_system(&self, system: Option<&str>) -> Result<(String, String)> {
        let full = self.render(system, MARKER)?;
        let (a, b) = full
            .split_once(MARKER)
            .context("the chat template does not contain the user message")?;
        Ok((a.to_string(), b.to_string()))
    }
}
