"""Ready-to-paste IDE settings for a published endpoint: llm-vscode, Continue, OpenAI clients."""

from __future__ import annotations

from typing import Any

from tailor.fim import STARCODER, FimStyle


def ide_settings(
    base_url: str,
    model: str,
    token_placeholder: str = "<your Tailor team token>",
    *,
    fim: FimStyle = STARCODER,
    context_window: int = 2048,
    max_new_tokens: int = 60,
) -> dict[str, Any]:
    """Settings for llm-vscode (TGI protocol), Continue (OpenAI) and any OpenAI client."""
    base = base_url.rstrip("/")
    return {
        "llm-vscode": {
            "llm.backend": "tgi",
            "llm.url": f"{base}/tgi/{model}/generate",
            "llm.modelId": model,
            "llm.apiToken": token_placeholder,
            "llm.fillInTheMiddle.enabled": True,
            "llm.fillInTheMiddle.prefix": fim.prefix,
            "llm.fillInTheMiddle.suffix": fim.suffix,
            "llm.fillInTheMiddle.middle": fim.middle,
            "llm.tokensToClear": ["<|endoftext|>", *fim.extra],
            "llm.contextWindow": context_window,
            "llm.requestBody": {
                "parameters": {
                    "max_new_tokens": max_new_tokens,
                    "temperature": 0.2,
                    "top_p": 0.95,
                    "do_sample": True,
                    "return_full_text": False,
                }
            },
        },
        "continue": {
            "tabAutocompleteModel": {
                "title": f"Tailor {model}",
                "provider": "openai",
                "apiBase": f"{base}/v1",
                "apiKey": token_placeholder,
                "model": model,
                "useLegacyCompletionsEndpoint": True,
            },
            "models": [
                {
                    "title": f"Tailor {model} (chat)",
                    "provider": "openai",
                    "apiBase": f"{base}/v1",
                    "apiKey": token_placeholder,
                    "model": model,
                }
            ],
        },
        "openai": {
            "base_url": f"{base}/v1",
            "api_key": token_placeholder,
            "model": model,
            "python": (
                "from openai import OpenAI\n"
                f'client = OpenAI(base_url="{base}/v1", api_key="{token_placeholder}")\n'
                f'out = client.completions.create(model="{model}", prompt="def add(a, b):\\n    ",'
                ' suffix="\\n", max_tokens=32, temperature=0)\n'
                "print(out.choices[0].text)\n"
            ),
        },
    }
