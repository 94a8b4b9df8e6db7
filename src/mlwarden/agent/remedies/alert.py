"""The ``alert`` action: a webhook POST with a JSON body in the format the policy names.

``alert.format`` of the policy chooses the body: ``mlwarden`` (its own fields and a
Slack-compatible ``text``), ``alertmanager`` (Alertmanager's webhook payload, version 4, for any
receiver written for Alertmanager), ``pagerduty`` (an Events API v2 ``trigger`` event, with the
routing key of ``MLWARDEN_PAGERDUTY_ROUTING_KEY``) or ``slack`` (an incoming webhook message
with Block Kit blocks).

Retries with exponential backoff (``backoff_s * 2**attempt``) on connection errors and 5xx/429
answers; every alert is also logged as an event of the model, delivered or not.

With ``MLWARDEN_WEBHOOK_SECRET`` set, each POST carries ``X-Mlwarden-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (the scheme Stripe uses), so the
receiver can tell mlwarden's alerts from forgeries and refuse replays of old ones:

>>> body = b'{"model": "churn"}'
>>> header = sign_body("s3cret", body, timestamp=1_790_000_000)
>>> verify_signature("s3cret", body, header, now=1_790_000_060)
True
>>> verify_signature("s3cret", b'{"model": "fraud"}', header, now=1_790_000_060)
False
>>> verify_signature("s3cret", body, header, now=1_790_000_000 + 3600)  # too old
False
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any, get_args

import httpx

from mlwarden.agent.policy import AlertFormat
from mlwarden.agent.remedies.base import ExecEnv, Remedy, VerifyTarget
from mlwarden.agent.remedies.registry import register
from mlwarden.domain import ActionKind
from mlwarden.errors import InvalidInput, ServiceUnavailable
from mlwarden.settings import Settings
from mlwarden.store.journal import ActionRow


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


ALERT_FORMATS: tuple[str, ...] = get_args(AlertFormat)
# mlwarden's severities as PagerDuty's (Events API v2 takes critical, error, warning, info)
_PAGERDUTY_SEVERITY = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}
# Alertmanager's endsAt of an alert still firing
_ZERO_TIME = "0001-01-01T00:00:00Z"


def format_alert(
    fmt: str,
    payload: dict[str, Any],
    *,
    routing_key: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The body of ``payload`` (from :func:`alert_payload`) in the receiver's format ``fmt``.

    >>> body = format_alert("pagerduty", alert_payload("churn", {"severity": "high"}),
    ...                     routing_key="R0UT1NG", now=datetime(2026, 11, 30, tzinfo=UTC))
    >>> body["event_action"], body["payload"]["severity"], body["payload"]["source"]
    ('trigger', 'error', 'mlwarden/churn')
    """
    now = now or datetime.now(UTC)
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    model, severity, title = payload["model"], str(payload["severity"]), payload["title"]
    details = payload["details"]
    if fmt == "mlwarden":
        return payload
    if fmt == "alertmanager":
        labels = {"alertname": "MlwardenAlert", "model": model, "severity": severity}
        if details.get("diagnosis"):
            labels["diagnosis"] = str(details["diagnosis"])
        if payload["incident"] is not None:
            labels["incident"] = str(payload["incident"])
        annotations = {"summary": title, "description": payload["text"]}
        fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()
        return {
            "version": "4",
            "groupKey": f'{{}}:{{model="{model}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "mlwarden",
            "groupLabels": {"model": model},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": stamp,
                    "endsAt": _ZERO_TIME,
                    "generatorURL": "",
                    "fingerprint": fingerprint[:16],
                }
            ],
        }
    if fmt == "pagerduty":
        if not routing_key:
            raise InvalidInput(
                "alert.format pagerduty needs a routing key: set MLWARDEN_PAGERDUTY_ROUTING_KEY "
                "to the integration key of a PagerDuty Events API v2 service"
            )
        body: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": "trigger",
            "payload": {
                "summary": title[:1024],  # the API refuses longer summaries
                "source": f"mlwarden/{model}",
                "severity": _PAGERDUTY_SEVERITY.get(severity, "warning"),
                "timestamp": stamp,
                "component": model,
                "group": "mlwarden",
                "class": str(details.get("diagnosis") or "alert"),
                "custom_details": {**details, "text": payload["text"]},
            },
            "client": "mlwarden",
        }
        if payload["incident"] is not None:
            # one PagerDuty incident per mlwarden incident: later alerts of it update that one
            body["dedup_key"] = f"mlwarden/{model}/incident/{payload['incident']}"
        return body
    if fmt == "slack":
        fields = [
            {"type": "mrkdwn", "text": f"*{key}*\n{str(details[key])[:1900]}"}
            for key in ("diagnosis", "action", "rationale")
            if details.get(key)
        ]
        section: dict[str, Any] = {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*{severity.upper()}* on model `{model}`"},
        }
        if fields:
            section["fields"] = fields
        return {
            "text": payload["text"][:3000],  # shown in notifications and where blocks are not
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                section,
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": f"mlwarden · {stamp[:19]}Z"
                            + (f" · incident {payload['incident']}" if payload["incident"] else ""),
                        }
                    ],
                },
            ],
        }
    raise InvalidInput(f"unknown alert format {fmt!r}: one of {', '.join(ALERT_FORMATS)}")


SIGNATURE_HEADER = "X-Mlwarden-Signature"
# how old a signed alert may be before a receiver refuses it as a replay
SIGNATURE_TOLERANCE_S = 300


def sign_body(secret: str, body: bytes, *, timestamp: int) -> str:
    """The ``X-Mlwarden-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """True when ``header`` signs exactly ``body`` with ``secret`` within ``tolerance_s``.

    For the receiving end of the webhook: pass the raw request body, not re-encoded JSON.
    """
    if not header:
        return False
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign_body(secret, body, timestamp=timestamp)
    return hmac.compare_digest(expected, f"t={timestamp},v1={parts.get('v1', '')}")


def send_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    retries: int,
    backoff_s: float,
    timeout_s: float,
    secret: str | None = None,
) -> dict[str, Any]:
    """POST ``payload`` to ``url`` (signed when a ``secret`` is given); returns
    ``{"status", "attempts"}`` or raises after retries."""
    body = json.dumps(payload).encode()
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE_HEADER] = sign_body(secret, body, timestamp=int(time.time()))
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 300:
            return {"status": response.status_code, "attempts": attempt + 1}
        last = f"HTTP {response.status_code}"
        if response.status_code < 500 and response.status_code != 429:
            break  # the receiver refuses this body; sending it again will not help
    raise ServiceUnavailable(
        f"alert webhook {destination_of(url)} failed after {attempt + 1} attempt(s): {last}"
    )


def destination_of(url: str) -> str:
    """Where an alert went, for people: the webhook's scheme and host. Its path is left out:
    chat webhooks (Slack's, for one) carry their token there."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}" + (f":{parts.port}" if parts.port else "")


def _configured_secret() -> str | None:
    # read when an alert goes out (rarely), not each time an executor environment is made
    secret = Settings().webhook_secret
    return None if secret is None else secret.get_secret_value()


def _routing_key() -> str | None:
    key = Settings().pagerduty_routing_key
    return None if key is None else key.get_secret_value()


@register
class Alert(Remedy):
    """Tell the people on call: a webhook POST in the policy's format, delivered or not
    (journaled and on the timeline either way)."""

    kind = ActionKind.ALERT
    phrase = "alert the people on call"
    verifies = VerifyTarget.NOTHING  # no routing changes: nothing to verify, nothing to undo
    remedial = False

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        model = action["model"]
        params = dict(action["params"])
        remedy_id = params.get("remedy_action_id")
        if remedy_id is not None:
            # an alert journaled with a remedy reports how that remedy ended, as of now
            remedy = env.journal.get(int(remedy_id))
            params["action"] = f"{remedy['kind']} ({remedy['state']})"
        payload = alert_payload(model, params)
        settings = env.policy.alert
        url = action["params"].get("webhook_url") or settings.webhook_url
        delivery: dict[str, Any] = {
            "delivered": False,
            "webhook": bool(url),
            "format": settings.format,
        }
        if not url:
            # journaled and on the timeline, but nobody was paged: say so wherever it is shown
            delivery["outcome"] = "not delivered: no webhook configured"
        try:
            if url:
                delivery["destination"] = destination_of(url)
                body = format_alert(
                    settings.format,
                    payload,
                    routing_key=_routing_key() if settings.format == "pagerduty" else None,
                )
                delivery |= send_webhook(
                    url,
                    body,
                    retries=settings.retries,
                    backoff_s=settings.backoff_s,
                    timeout_s=settings.timeout_s,
                    secret=env.webhook_secret or _configured_secret(),
                )
                delivery["delivered"] = True
                delivery["outcome"] = (
                    f"delivered to {delivery['destination']} (HTTP {delivery['status']}, "
                    f"{delivery['attempts']} attempt(s))"
                )
        except ServiceUnavailable:
            delivery["outcome"] = f"not delivered: {delivery['destination']} did not accept it"
            raise
        except InvalidInput as exc:
            delivery["outcome"] = f"not delivered: {exc}"
            raise
        finally:
            # mlwarden's own fields are recorded, whatever went out: a PagerDuty body holds its key
            env.store.add_event(model, "alert", env.actor, {"payload": payload, **delivery})
        return delivery
