"""Model serving: the OpenAI-compatible HTTP server on the engine, its protocol, and the launcher of server processes."""
