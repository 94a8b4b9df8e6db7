"""mlwarden: an autonomous reliability engineer for machine-learning models in production."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> object:
    # The SDK pulls in httpx; import it only when a caller asks for it.
    if name == "Client":
        from mlwarden.sdk import Client

        return Client
    raise AttributeError(name)
