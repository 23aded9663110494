"""Build a tiny, really-trained Llama and tokenizer locally (no downloads).

Used by ``evalsuite demo`` and the tests: a byte-level BPE trained with
``tokenizers`` on project-written Arabic and English text, and a
``LlamaForCausalLM`` trained on the same text for a few hundred steps so its
logits are far from ties.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite.spec.catalog import shipped_tasks_dir

EXTRA_TEXT = [
    "اللغة العربية لغة جميلة يتحدث بها الملايين في بلدان كثيرة.",
    "يقرأ الطلاب الكتب في المكتبة ويكتبون الواجبات في الدفاتر.",
    "يحب الناس القهوة في الصباح والشاي في المساء.",
    "تسافر العائلة إلى البحر في الصيف وتعود في الخريف.",
    "هذا النموذج صغير جدا ولا يعرف إلا القليل من الكلمات.",
    "The model is small and knows only a few words of Arabic and English.",
    "Evaluation of language models needs careful prompts and honest numbers.",
    "Premise and hypothesis: does the first sentence entail the second?",
    "نعم، لا، ربما: هذه أجوبة قصيرة.",
]


def corpus() -> list[str]:
    """Project-written lines: the demo task data plus a few extra sentences."""
    lines: list[str] = []
    data = shipped_tasks_dir() / "demo" / "data"
    for f in sorted(data.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if "text" in rec:
                lines.append(rec["text"])
            if "context" in rec:
                lines.append(f"{rec['context']} {rec['target']}")
            if "prompt" in rec:
                lines.append(f"{rec['prompt']} {rec['answer']}")
    return lines + EXTRA_TEXT


def build_tokenizer(lines: list[str], vocab: int = 600, max_positions: int = 512):  # type: ignore[no-untyped-def]
    """A byte-level BPE trained on ``lines``, with <pad>, <s> and </s> (ids 0, 1, 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(lines * 3, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tok.model_max_length = max_positions
    return tok


def build_tiny_model(out: Path, steps: int = 200, hidden: int = 64, layers: int = 2, vocab: int = 600,
                     seed: int = 0, max_positions: int = 512, text: list[str] | None = None) -> Path:
    """Train a tokenizer and a tiny Llama on ``text`` and save both to ``out``; returns ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    lines = text if text is not None else corpus()
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(lines, vocab, max_positions)
    tok.save_pretrained(out)

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: bit-identical weights on every run on one machine (not across CPU models)
    try:
        _train(model, tok, lines, steps, seed)
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(out)
    return out


def _train(model, tok, lines: list[str], steps: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    import torch

    if steps:
        ids = []
        for line in lines:
            ids.extend([tok.bos_token_id] + tok(line, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        data = torch.tensor(ids, dtype=torch.long)
        seq = 48
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(steps):
            starts = torch.randint(0, max(1, len(data) - seq - 1), (16,), generator=g)
            batch = torch.stack([data[s: s + seq] for s in starts])
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def weights_digest(folder: Path) -> str:
    """sha256 of a model's tensors (names and bytes), independent of config.json's transformers_version."""
    import hashlib

    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode("utf-8"))
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()
