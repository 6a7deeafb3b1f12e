"""The alert automation: SLA breaches and health drops, sent to a webhook by the Prefect server.

Not a flow: the Prefect objects that turn `domainflow.sla.breached` and `domainflow.health.degraded`
events (emitted by monitoring, with the figures) into a notification. A Custom Webhook notification
block holds the URL, taken from the environment (DOMAINFLOW_ALERT_WEBHOOK_URL), so it is never written
into prefect.yaml or the repository; an event automation sends each alert event through it. Prefect's
deployment YAML has no place for automations, so `domainflow alerts install` (and `serve-flows`, when
the variable is set) creates both, replacing earlier ones of the same names.
"""

from __future__ import annotations

from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events import EventTrigger
from prefect.events.actions import SendNotification
from prefect.events.schemas.events import ResourceSpecification

from domainflow.monitoring.events import ALERT_EVENTS

BLOCK_NAME = "domainflow-alerts"
AUTOMATION_NAME = "domainflow-alerts"
# Rendered by the server for each event (Jinja): which alert, for which domain, with its figures.
SUBJECT = "domainflow: {{ event.event }} for {{ event.resource['domainflow.domain'] }}"
BODY = (
    "{{ event.event }}: pipeline {{ event.resource['domainflow.pipeline'] }}, domain "
    "{{ event.resource['domainflow.domain'] }}, at {{ event.occurred }}.\n"
    "Figures: {{ event.payload | tojson }}"
)


def install_alerts(webhook_url: str) -> Automation:
    """The webhook block and the automation on the current Prefect API; earlier ones of the same names replaced."""
    block = CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=webhook_url,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    block_id = block.save(BLOCK_NAME, overwrite=True)
    while True:  # earlier installs: replaced, not doubled
        try:
            Automation.read(name=AUTOMATION_NAME).delete()
        except ValueError:
            break
    return Automation(
        name=AUTOMATION_NAME,
        description="SLA breaches and health drops of domainflow's served models, to the alert webhook.",
        trigger=EventTrigger(
            expect=set(ALERT_EVENTS),
            match=ResourceSpecification({"prefect.resource.id": "domainflow.domain.*"}),
            posture="Reactive",
            threshold=1,
            within=0,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()
