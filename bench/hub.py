"""Whether the Hugging Face hub can be reached, decided once per process.

huggingface_hub retries a failed request five times with back-off and logs each try; with no network a single
`bench data fetch` or `bench run` on a hub task spent minutes retrying before its error. Before any hub access the
code calls `prefer_offline()`: when HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE) is set, or the
hub endpoint does not accept a connection within a few seconds, the libraries are switched to offline mode, so they
read the local Hugging Face cache and fail at once when a file is not there, and the caller's one-paragraph error
follows.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import cache
from urllib.parse import urlparse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
CONNECT_TIMEOUT_S = 3.0


@cache
def offline_reason() -> str | None:
    """Why the hub is out of reach (None: it accepted a connection)."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{name} is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({type(exc).__name__}: {exc})"


def prefer_offline() -> str | None:
    """Switch huggingface_hub, datasets and transformers to offline mode when the hub is out of reach; returns
    the reason (None: online)."""
    reason = offline_reason()
    if reason is None:
        return None
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported before: it read the variable at import time
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_DATASETS_OFFLINE = True  # type: ignore[attr-defined]
        datasets_config.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    return reason
