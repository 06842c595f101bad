"""The calls of NVIDIA's multi-LoRA NIM notebook (llama3-lora-deploy-nim.ipynb), unchanged but
for the URL and the model ids: list the models, then a completion from the base model and from
each LoRA adapter, with Python's ``requests``.

    .venv/bin/python examples/nim_notebook.py [--url http://0.0.0.0:8000] [--max_tokens 128]
"""

from __future__ import annotations

import argparse
import json

import requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://0.0.0.0:8000")
    parser.add_argument("--max_tokens", type=int, default=128)
    args = parser.parse_args()

    # "Check available LoRA models"
    response = requests.get(f"{args.url}/v1/models", timeout=60)
    data = response.json()
    print(json.dumps(data, indent=4))
    models = [m["id"] for m in data["data"]]
    base = [m["id"] for m in data["data"] if m.get("parent") is None]
    adapters = [m["id"] for m in data["data"] if m.get("parent") is not None]

    # "Multi-LoRA inference": the same request shape for the base model and every adapter
    url = f"{args.url}/v1/completions"
    headers = {"accept": "application/json", "Content-Type": "application/json"}
    prompt = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
              "clips in May. How many clips did Natalia sell altogether in April and May? "
              "Answer:")
    for model in base[:1] + adapters:
        data = {"model": model, "prompt": prompt, "max_tokens": args.max_tokens}
        response = requests.post(url, headers=headers, json=data, timeout=300)
        response_data = response.json()
        print(json.dumps(response_data, indent=4))
        response.raise_for_status()
    print(f"models: {', '.join(models)}")


if __name__ == "__main__":
    main()
