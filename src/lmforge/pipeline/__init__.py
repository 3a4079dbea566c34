"""Chaining the lifecycle stages: the quickstart main job (and, later, pipelines)."""
