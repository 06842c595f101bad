"""Train a PEFT LoRA adapter for a built-in model on the CPU (``scripts/finetune_lora.py``).

Input: JSON lines of ``{"prompt", "completion"}`` pairs (NeMo's and NIM's shape), from a file or
on standard input (``--data -``: rows a database query selects, piped by superduper's trainer in
``examples/superduper_lora.py``); the loss is on the completion and the end-of-sequence token
only. With ``--chat`` each prompt is a user message rendered with the model's chat template (what
chat completions send), so the adapter learns the turn it will serve. Output: an adapter folder
(``adapter_config.json`` + ``adapter_model.safetensors``) written into an adapter directory
atomically (staged, then renamed), so a server scanning that directory never sees half of one.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ovserve.errors import ToolchainError
from ovserve.toolchain import tool
from ovserve.toolchain.catalog import BUILTIN_MODELS, DEFAULT_MODEL
from ovserve.toolchain.staging import staged_directory
from ovserve.toolchain.tasks import parse_rows, read_jsonl
from ovserve.toolchain.training import train_steps

log = logging.getLogger(__name__)


def base_checkpoint(model: str) -> tuple[Path, Any]:
    """The Hugging Face checkpoint of a built-in model (converted once, cached) and its
    corrected tokenizer."""
    from ovserve.toolchain import hf_from_gguf
    from ovserve.toolchain.download import _hf_checkpoint_for
    from ovserve.toolchain.gguf_source import fetch_gguf

    if model not in BUILTIN_MODELS:
        raise ToolchainError(f"unknown base model {model!r} (built-in: "
                             f"{', '.join(BUILTIN_MODELS)})")
    builtin = BUILTIN_MODELS[model]
    with tqdm(total=2, desc=f"base {model}", unit="step") as progress:
        checkpoint = _hf_checkpoint_for(builtin, progress)
    return checkpoint, hf_from_gguf.corrected_tokenizer(fetch_gguf(builtin))


def read_rows(data: Path) -> list[dict[str, str]]:
    """The training pairs of a JSONL file, or of standard input when ``data`` is ``-``."""
    if str(data) == "-":
        return parse_rows(sys.stdin.read().splitlines(), "<stdin>")
    return read_jsonl(data)


def _prompt_text(prompt: str, tokenizer: Any, chat: bool) -> str:
    """The prompt as the model sees it: as given, or a user turn in the chat template."""
    if not chat:
        return prompt
    text: str = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                              tokenize=False, add_generation_prompt=True)
    return text


def _examples(rows: list[dict[str, str]], tokenizer: Any, chat: bool = False
              ) -> list[tuple[list[int], list[int]]]:
    examples = []
    for row in rows:
        prompt = tokenizer(_prompt_text(row["prompt"], tokenizer, chat),
                           add_special_tokens=False)["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        completion.append(tokenizer.eos_token_id)
        examples.append((prompt + completion, [-100] * len(prompt) + completion))
    return examples


def train(data: Path, output: Path, *, model: str = DEFAULT_MODEL, rank: int = 8,
          alpha: int = 16, targets: tuple[str, ...] = ("q_proj", "v_proj"),
          steps: int = 90, batch_size: int = 16, learning_rate: float = 2e-3,
          seed: int = 0, threads: int | None = None, chat: bool = False) -> Path:
    """Train an adapter on ``data`` (a JSONL file, ``-`` for standard input) and write it to
    the folder ``output``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    rows = read_rows(data)
    random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    checkpoint, tokenizer = base_checkpoint(model)
    log.info("fine-tuning a LoRA adapter (r=%d, alpha=%d, %s) of %s on %d examples from %s",
             rank, alpha, "/".join(targets), checkpoint, len(rows),
             "standard input" if str(data) == "-" else data)
    base = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0,
        bias="none", task_type="CAUSAL_LM"))
    peft_model.train()
    examples = _examples(rows, tokenizer, chat)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad],
                                  lr=learning_rate)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    started = time.monotonic()
    def batches() -> Iterator[list[tuple[list[int], list[int]]]]:
        for _ in range(steps):
            yield random.sample(examples, min(batch_size, len(examples)))

    def loss_of(batch: list[tuple[list[int], list[int]]]) -> Any:
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        return peft_model(input_ids=input_ids, attention_mask=mask, labels=labels).loss

    train_steps(batches(), loss_of, optimizer, total=steps, desc="fine-tune", clip=None,
                window=1)
    with staged_directory(output, force=True) as staging:
        peft_model.save_pretrained(str(staging))
        staging.chmod(0o755)  # readable by a server running as another user
    log.info("wrote adapter %s to %s in %.0f s", output.name, output, time.monotonic() - started)
    return output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune_lora.py",
        description="Train a LoRA adapter (Hugging Face PEFT format) for a built-in model on the "
        "CPU from JSONL prompt/completion pairs (a file, or standard input), and write it into an "
        "adapter folder; a server "
        "with --lora_dir on that folder serves it as model id NAME without a restart.")
    parser.add_argument("--data", type=Path, required=True,
                        help="training JSONL; - reads the rows from standard input")
    parser.add_argument("--chat", action="store_true",
                        help="prompts are user messages: render them with the model's chat "
                        "template, as chat completions will")
    parser.add_argument("--lora_dir", type=Path, required=True,
                        help="adapter folder the server scans (the adapter goes in NAME/)")
    parser.add_argument("--name", required=True, help="adapter name = model id")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(BUILTIN_MODELS),
                        help="base model (default %(default)s)")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=int, default=16, help="lora_alpha (scale alpha / r)")
    parser.add_argument("--targets", default="q_proj,v_proj",
                        help="comma-separated modules (default %(default)s)")
    parser.add_argument("--steps", type=int, default=90,
                        help="optimizer steps (default %(default)s: about 2 minutes on 2 cores)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ovserve.errors import AdapterError

    return tool.run(build_parser(), argv, _run, AdapterError, ValueError, OSError)


def _run(args: argparse.Namespace) -> None:
    from ovserve.engine.adapters import check_name

    check_name(args.name)
    train(args.data, args.lora_dir / args.name, model=args.model, rank=args.rank,
          alpha=args.alpha, targets=tuple(t for t in args.targets.split(",") if t),
          steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
          seed=args.seed, chat=args.chat)
