"""Alerts: incident events delivered to an organization's channels (docs/alerts-delivery.md).

What other parts call (import them from their modules; nothing is imported here, so the senders
and the channels code can import their siblings without a cycle):
- control_plane.alerts.outbox.dispatch_events(session, now=, limit=, give_up_after=): fan-out.
- control_plane.alerts.outbox.release_held(session, now=): incidents whose maintenance ended.
- control_plane.alerts.reminders.remind(session, now=): reminders due.
- control_plane.alerts.worker.deliver_due(db, settings, now=, senders=, http=): one batch sent;
  deliver_all_due(db, settings, now=): until nothing is due.
- control_plane.alerts.job.alert_pass(db, settings, now=): all of the above, once; AlertsLoop
  runs it every alert_delivery_seconds and when woken (the `incident_events` change topic).
"""
