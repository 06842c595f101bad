"""Retrieval-augmented generation: documents -> chunks (``chunking``), a Chroma vector store
(``store``), ingestion that only embeds what changed (``ingest``), and the retriever node that
puts the best chunks into an LLM request (``ovserve.nodes.retriever``)."""
