"""Groq over its OpenAI-compatible API (PROVIDERS.md §5 [P]): base `https://api.groq.com/openai/v1`,
Bearer key, verify with `GET /models`, complete with `POST /chat/completions`."""

from __future__ import annotations

from apps.integrations.openai.client import OpenAICompatibleClient

# [U] A sensible default, not a confirmed one (Groq rotates its hosted models): GROQ_MODEL overrides it.
DEFAULT_MODEL = "llama-3.1-8b-instant"


class GroqClient(OpenAICompatibleClient):
    provider = "groq"
    api_key_var = "GROQ_API_KEY"
    default_model = DEFAULT_MODEL
    # max_completion_tokens is inherited: Groq's API takes it and deprecates max_tokens [P] (groq-python).
