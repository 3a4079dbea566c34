"""Inference: token streaming for the CLI now; the OpenAI-compatible server builds on it."""
