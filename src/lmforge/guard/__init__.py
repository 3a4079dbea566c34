"""Guardrails: content moderation, prompt-injection detection and PII redaction."""
