//! The `tune run` command a TorchTune config documents in its header comment.
//!
//! A config does not say how many processes run it: `tune run --nproc_per_node 8
//! lora_finetune_distributed --config x.yaml` does. TorchTune's shipped configs (and the ones
//! tunebridge writes) show that command in a comment, so the reader takes the recipe and the
//! device count from the first `tune run` comment line that names a recipe.

/// A `tune run` command found in a comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub recipe: String,
    pub nproc_per_node: Option<u32>,
    pub nnodes: Option<u32>,
    /// Byte range of the command in the source, for provenance and diagnostics.
    pub start: usize,
    pub end: usize,
}

impl Launch {
    /// Total processes (= data-parallel devices) when the command gives them.
    pub fn devices(&self) -> Option<u32> {
        match (self.nproc_per_node, self.nnodes) {
            (Some(p), n) => Some(p * n.unwrap_or(1)),
            (None, Some(n)) => Some(n),
            (None, None) => None,
        }
    }
}

/// The first `tune run` command in a comment line (`# … tune run [opts] <recipe> …`).
pub fn find(text: &str) -> Option<Launch> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if !trimmed.starts_with('#') {
            continue;
        }
        let Some(at) = line.find("tune run ") else {
            continue;
        };
        let cmd = line[at..].trim_end();
        if let Some(l) = parse(cmd, line_start + at) {
            return Some(l);
        }
    }
    None
}

/// `tune run [--opt value | --opt=value]… <recipe> [--config X] [k=v…]`.
fn parse(cmd: &str, start: usize) -> Option<Launch> {
    let mut tokens = cmd.split_whitespace().skip(2).peekable();
    let (mut nproc, mut nnodes) = (None, None);
    let mut recipe = None;
    while let Some(tok) = tokens.next() {
        if let Some(opt) = tok.strip_prefix("--") {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => {
                    let v = tokens
                        .peek()
                        .filter(|t| !t.starts_with("--"))
                        .map(|t| t.to_string());
                    if v.is_some() {
                        tokens.next();
                    }
                    (opt.to_string(), v)
                }
            };
            let n = value.as_deref().and_then(|v| v.parse::<u32>().ok());
            match name.replace('-', "_").as_str() {
                "nproc_per_node" => nproc = n,
                "nnodes" => nnodes = n,
                _ => {}
            }
            continue;
        }
        let name = tok.trim_matches(|c: char| c == '`' || c == '"' || c == '\'');
        if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.contains('_')
            && !name.is_empty()
        {
            recipe = Some(name.to_string());
        }
        break;
    }
    Some(Launch {
        recipe: recipe?,
        nproc_per_node: nproc,
        nnodes,
        start,
        end: start + cmd.len(),
    })
}

#[cfg(test)]
mod tests {
    use crate::translate::torchtune::launch::*;

    #[test]
    fn reads_the_recipe_and_device_count_from_a_header_comment() {
        let text = "# Config for multi-device LoRA\n#\n#   tune run --nproc_per_node 2 lora_finetune_distributed --config llama3_1/8B_lora\n\noutput_dir: /tmp/x\n";
        let l = find(text).unwrap();
        assert_eq!(l.recipe, "lora_finetune_distributed");
        assert_eq!(l.devices(), Some(2));
        assert_eq!(
            &text[l.start..l.end],
            "tune run --nproc_per_node 2 lora_finetune_distributed --config llama3_1/8B_lora"
        );
    }

    #[test]
    fn every_spelling_of_the_torchrun_options() {
        for (cmd, devices) in [
            ("# tune run --nproc_per_node=4 full_finetune_distributed --config c", Some(4)),
            ("# tune run --nnodes 2 --nproc_per_node 8 --rdzv_id 101 --rdzv_backend c10d --rdzv_endpoint h:29500 full_finetune_distributed --config c", Some(16)),
            ("# tune run --nproc-per-node 3 lora_finetune_distributed --config c", Some(3)),
            ("# tune run lora_finetune_single_device --config c", None),
        ] {
            let l = find(cmd).unwrap_or_else(|| panic!("{cmd}"));
            assert_eq!(l.devices(), devices, "{cmd}");
        }
    }

    #[test]
    fn commands_outside_comments_and_without_a_recipe_are_ignored() {
        assert_eq!(find("prompt: tune run lora_finetune_single_device\n"), None);
        assert_eq!(find("# tune run --help\n"), None);
        assert_eq!(find("# no command here\n"), None);
    }
}
