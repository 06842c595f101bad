"""The optimizer-step loop the toolchain's trainers share (LoRA adapters, embedding fine-tuning,
the reranker): loss, backward, optional gradient clipping, optimizer and schedule steps, one
tqdm bar showing the recent mean loss.

Each trainer keeps its own model, batches and loss; this is only the loop. A library trainer
(transformers' ``Trainer``, sentence-transformers' fit) would bring the ``datasets`` package,
checkpoint folders and its own logging for what is here a dozen lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tqdm import tqdm

Batch = TypeVar("Batch")


def train_steps(batches: Iterable[Batch], loss_of: Callable[[Batch], Any], optimizer: Any, *,
                total: int, desc: str, parameters: Iterable[Any] | None = None,
                clip: float | None = 1.0, schedule: Any = None, window: int = 5
                ) -> list[float]:
    """One optimizer step per batch (``total`` of them, for the bar); returns every step's
    loss. ``loss_of`` returns the batch's loss tensor; gradients of ``parameters`` are
    clipped to norm ``clip`` (``None``: not clipped); ``schedule`` (a torch LR scheduler)
    steps after the optimizer."""
    import torch

    kept = list(parameters) if parameters is not None and clip is not None else []
    losses: list[float] = []
    with tqdm(total=total, desc=desc, unit="step") as bar:
        for batch in batches:
            loss = loss_of(batch)
            loss.backward()
            if kept and clip is not None:
                torch.nn.utils.clip_grad_norm_(kept, clip)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            recent = losses[-window:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
            bar.update()
    return losses
