"""Clients: anything that turns a Request into a Completion (the in-process reference engine, any OpenAI-compatible endpoint)."""
