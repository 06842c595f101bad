"""superduper's OpenAI models against ovserve: chat on the built-in LLM, embeddings on the
built-in embedding model.

    .venv-clients/bin/python examples/superduper_client.py [--base_url http://localhost:8000/v1]

Give the server through ``client_kwargs`` (or the ``OPENAI_BASE_URL`` environment variable).
superduper-openai 0.10's documented ``openai_api_base`` argument does not work: the chat model's
``postinit`` skips the base class's, which is where that argument is read, and the base class
also puts the URL where the HTTP headers go.
"""

from __future__ import annotations

import argparse
import json

from superduper_openai.model import OpenAIChatCompletion, OpenAIEmbedding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_url", default="http://localhost:8000/v1")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--embedding_model", default="all-minilm-l6-v2")
    parser.add_argument("--max_tokens", type=int, default=64)
    args = parser.parse_args()
    server = {"base_url": args.base_url, "api_key": "unused"}  # no key is checked

    chat = OpenAIChatCompletion(identifier="ovserve-chat", model=args.model,
                                client_kwargs=dict(server),
                                predict_kwargs={"max_tokens": args.max_tokens})
    print("chat:", json.dumps(chat.predict("What is the theory of relativity?")))
    # a prompt with retrieved context, as superduper's RAG templates build it
    rag = OpenAIChatCompletion(identifier="ovserve-rag", model=args.model,
                               client_kwargs=dict(server),
                               prompt="Answer from these facts:\n{context}\n\nQuestion: ",
                               predict_kwargs={"max_tokens": args.max_tokens})
    answer = rag.predict("Where is the Eiffel Tower?", context=["The Eiffel Tower is in Paris."])
    print("with context:", json.dumps(answer))

    embed = OpenAIEmbedding(identifier="ovserve-embed", model=args.embedding_model,
                            client_kwargs=dict(server))
    vector = embed.predict("ovserve serves OpenVINO models")
    batch = embed.predict_batches(["first text", "second text", "third text"])
    print(f"embedding: {vector.shape[0]} dimensions; a batch of {len(batch)} vectors")


if __name__ == "__main__":
    main()
