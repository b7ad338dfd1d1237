"""The in-process engine: continuous batching over the reference model."""
