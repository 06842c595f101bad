#!/usr/bin/env python3
"""Fine-tune the built-in embedding model on a document corpus on the CPU and write an OpenVINO
model folder ovserve serves like the stock one. Run with --help for the options.

Why pairs from the documents' structure, not from the served LLM: the built-in LLM (135M
parameters) writes questions that are often off-topic or invent facts, generating them costs
minutes of decoding, and they change with the CPU's kernels. Headings and bold lead-ins are
what people call a passage when they look for it (title -> its text), and a paragraph's first
sentence -> the rest of its chunk (the inverse cloze task) teaches the model to find a chunk
from what it says rather than from a copied phrase. Both are free, reproducible, cut exactly as
the RAG store cuts chunks, and cannot leak an evaluation question into training
(ovserve/toolchain/embedding_pairs.py).
"""

import sys

from ovserve.toolchain.finetune_embeddings import main

if __name__ == "__main__":
    sys.exit(main())
