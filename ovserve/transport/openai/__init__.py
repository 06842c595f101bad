"""The OpenAI-compatible API: protocol models, serving (orchestration) and router (HTTP)."""
