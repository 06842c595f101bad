"""A superduper ``Trainer`` that fine-tunes a LoRA adapter of an ovserve model from the rows a
superduper query selects, and drops it into the server's adapter folder (``--lora_dir``).

superduper's own LLM trainer (superduper-transformers 0.10: trl 0.12's SFTTrainer) is not used.
It imports beside this venv's transformers, but no training run was tried: it loads the
tokenizer with ``AutoTokenizer`` from the checkpoint folder, while ovserve's base checkpoint
needs its corrected tokenizer, and it keeps its checkpoints in superduper's artifact store, not
in a folder a server serves. So the training runs in ovserve's own toolchain
(``scripts/finetune_lora.py`` in ovserve's venv), fed the selected rows on its standard input
(``--data -``): the database query is the source, no file is written. The model being fitted
is the same ``OpenAIChatCompletion`` class that then answers through the adapter's model id::

    trainer = OvserveLoRATrainer("faq-lora-trainer", key=("question", "answer"),
                                 select=db["faq"].select(), lora_dir="adapters",
                                 adapter="faq-style", command=[python, finetune_lora_py])
    tuned = OpenAIChatCompletion(identifier="faq-lora", model="faq-style", trainer=trainer, ...)
    db.apply(tuned)          # superduper selects the rows and calls trainer.fit
    tuned.predict("...")     # answered by the adapter

Kept in its own module (not the script's ``__main__``) so that superduper can load the
component back by its import path.
"""

import json
import subprocess
import typing as t

from superduper.components.model import Trainer


class OvserveLoRATrainer(Trainer):
    """Fit = train a PEFT LoRA adapter with ovserve's toolchain on ``(prompt, completion)`` rows.

    :param lora_dir: the adapter folder the server scans (``ovserve --lora_dir``)
    :param adapter: the adapter's name, which is its model id on the server
    :param command: how to run ovserve's trainer, e.g. ``[".venv/bin/python",
        "scripts/finetune_lora.py"]``
    :param steps: optimizer steps
    :param batch_size: examples per step
    :param chat: render prompts with the model's chat template (as chat completions do)
    """

    lora_dir: str
    adapter: str
    command: list[str]
    steps: int = 20
    batch_size: int = 8
    chat: bool = True

    def fit(self, model: t.Any, db: t.Any, train_dataset: list[t.Any],
            valid_dataset: list[t.Any]) -> None:
        """Train on every selected row (superduper's train and valid folds alike: a LoRA this
        small is judged by serving it, not by a held-out loss)."""
        rows = [_pair(item) for item in [*train_dataset, *valid_dataset]]
        if not rows:
            raise ValueError("the select query returned no rows to train on")
        argv = [*self.command, "--data", "-", "--lora_dir", self.lora_dir,
                "--name", self.adapter, "--steps", str(self.steps),
                "--batch_size", str(self.batch_size), *(["--chat"] if self.chat else [])]
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        subprocess.run(argv, input=lines, text=True, check=True)


def _pair(item: t.Any) -> dict[str, str]:
    """A trainer item for ``key=(prompt_column, completion_column)`` -> one training pair."""
    prompt, completion = item
    return {"prompt": str(prompt), "completion": str(completion)}
