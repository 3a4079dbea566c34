"""Data readers, formats and chat templates."""
