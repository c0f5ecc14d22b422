"""One sender per channel type, all with the signature of notification.Sender, looked up here."""

from __future__ import annotations

from control_plane.alerts.notification import Sender
from control_plane.alerts.senders import apprise, email, pagerduty, slack, webhook

__all__ = ["SENDERS"]

SENDERS: dict[str, Sender] = {
    "WEBHOOK": webhook.send,
    "SLACK": slack.send,
    "PAGERDUTY": pagerduty.send,
    "EMAIL": email.send,
    "APPRISE": apprise.send,
}
