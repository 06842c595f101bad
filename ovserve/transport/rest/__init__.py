"""HTTP front ends (FastAPI): KServe v2 REST and, later, the OpenAI-compatible API."""
