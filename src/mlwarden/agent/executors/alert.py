"""The ``alert`` action: a webhook POST with a JSON body and a Slack-compatible ``text``.

Retries with exponential backoff (``backoff_s * 2**attempt``) on connection errors and 5xx/429
answers; every alert is also logged as an event of the model, delivered or not.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from mlwarden.agent.executors import ExecEnv
from mlwarden.errors import ServiceUnavailable


def alert_payload(model: str, params: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of an alert; ``text`` is what Slack-compatible webhooks display."""
    severity = params.get("severity", "low")
    title = params.get("title") or f"mlwarden: {model} needs attention"
    lines = [f"*[{str(severity).upper()}] {title}*"]
    for key in ("diagnosis", "action", "rationale", "story"):
        if params.get(key):
            lines.append(f"{key}: {params[key]}")
    return {
        "source": "mlwarden",
        "model": model,
        "severity": severity,
        "title": title,
        "incident": params.get("incident_id"),
        "details": {k: v for k, v in params.items() if k not in {"title", "severity"}},
        "text": "\n".join(lines),
    }


def send_webhook(
    url: str, payload: dict[str, Any], *, retries: int, backoff_s: float, timeout_s: float
) -> dict[str, Any]:
    """POST ``payload`` to ``url``; returns ``{"status", "attempts"}`` or raises after retries."""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            response = httpx.post(url, json=payload, timeout=timeout_s)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 300:
            return {"status": response.status_code, "attempts": attempt + 1}
        last = f"HTTP {response.status_code}"
        if response.status_code < 500 and response.status_code != 429:
            break  # the receiver refuses this body; sending it again will not help
    raise ServiceUnavailable(f"alert webhook {url} failed after {attempt + 1} attempt(s): {last}")


def run_alert(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    model = action["model"]
    payload = alert_payload(model, action["params"])
    settings = env.policy.alert
    url = action["params"].get("webhook_url") or settings.webhook_url
    delivery: dict[str, Any] = {"delivered": False, "webhook": bool(url)}
    try:
        if url:
            delivery |= send_webhook(
                url,
                payload,
                retries=settings.retries,
                backoff_s=settings.backoff_s,
                timeout_s=settings.timeout_s,
            )
            delivery["delivered"] = True
    finally:
        env.store.add_event(model, "alert", env.actor, {"payload": payload, **delivery})
    return delivery
