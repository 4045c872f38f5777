"""Fill-in-the-middle prompt templates, one per model family.

All use prefix-suffix-middle order: the prefix comes first so the KV cache can be reused while the user
types at the end of it. Snippets from other files go before everything in the repo-level form, where the
family has one, so they too stay in the reusable part of the prompt.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Snippet:
    path: str
    text: str


@dataclass(frozen=True)
class FimTemplate:
    name: str
    prefix: str
    suffix: str
    middle: str
    # Special tokens that end the middle: EOS plus anything that starts a new section.
    stops: tuple[str, ...]
    file_sep: str | None = None
    repo_name: str | None = None
    # CodeLlama puts a space after <PRE>; the tokenizer would otherwise merge it into the prefix.
    prefix_pad: str = ""

    def render(self, prefix: str, suffix: str, *, path: str | None = None,
               snippets: tuple[Snippet, ...] = (), repo: str | None = None) -> str:
        head = ""
        if self.file_sep and (snippets or path):
            if self.repo_name and repo:
                head += f"{self.repo_name}{repo}\n"
            for s in snippets:
                head += f"{self.file_sep}{s.path}\n{s.text.rstrip()}\n"
            if path:
                head += f"{self.file_sep}{path}\n"
        elif snippets:  # no repo-level form: snippets become a comment-free preamble
            head = "".join(s.text.rstrip() + "\n\n" for s in snippets)
        return f"{head}{self.prefix}{self.prefix_pad}{prefix}{self.suffix}{suffix}{self.middle}"


TEMPLATES: dict[str, FimTemplate] = {t.name: t for t in (
    FimTemplate("qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                stops=("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                       "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>", "<|im_start|>"),
                file_sep="<|file_sep|>", repo_name="<|repo_name|>"),
    FimTemplate("starcoder2", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
                stops=("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>",
                       "<repo_name>"),
                file_sep="<file_sep>", repo_name="<repo_name>"),
    FimTemplate("deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
                stops=("<｜end▁of▁sentence｜>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
                       "<|EOT|>")),
    FimTemplate("codellama", "<PRE>", " <SUF>", " <MID>", stops=("<EOT>", "</s>"), prefix_pad=" "),
    FimTemplate("codegemma", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                stops=("<|file_separator|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                       "<eos>", "<end_of_turn>"),
                file_sep="<|file_separator|>"),
)}


def get_template(name: str) -> FimTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown FIM template {name!r}; known: {', '.join(TEMPLATES)}") from None
