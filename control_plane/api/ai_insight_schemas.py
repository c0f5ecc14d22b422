"""/api/monitors/:id/insights: the dismissal body (validated at the edge), the response models the
OpenAPI document states, and the serializer that fills them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, with_config
from typing_extensions import TypedDict

from control_plane.api.responses import CLOSED, Data, Timestamp, iso_at, one_of
from control_plane.api.schemas import RequestModel, examples
from control_plane.models.ai import AiInsight

INSIGHT_TYPES = (
    "model_downgrade",
    "duplicate_prompts",
    "high_error_rate",
    "retry_storm",
    "latency_regression",
    "rag_context_bloat",
    "unpriced_model",
)


class InsightUpdate(RequestModel):
    model_config = examples({"dismissed": True}, {"dismissed": False})

    dismissed: Annotated[
        bool,
        Field(
            description="true hides the insight until its numbers change materially (savings or its "
            "key figure up 50%, or a higher severity); false shows it again"
        ),
    ]


@with_config(CLOSED)
class InsightOut(TypedDict):
    """The reference's fields."""

    id: str
    monitorId: str
    type: Annotated[str, one_of(*INSIGHT_TYPES)]
    severity: Literal["info", "warning", "critical"]
    title: str
    description: str
    savings: Annotated[
        float | None,
        Field(description="Estimated USD per day, from the models' prices; null: none to estimate"),
    ]
    metadata: Annotated[
        dict[str, Any],
        Field(description="`recommendation` (what to do) and the figures behind the insight, per type"),
    ]
    dismissed: bool
    createdAt: Timestamp


class InsightResponse(Data[InsightOut]):
    pass


class InsightListResponse(Data[list[InsightOut]]):
    pass


def insight_out(row: AiInsight) -> InsightOut:
    return {
        "id": row.id,
        "monitorId": row.monitor_id,
        "type": row.type,
        "severity": row.severity,  # type: ignore[typeddict-item]
        "title": row.title,
        "description": row.description,
        "savings": row.savings,
        "metadata": dict(row.details or {}),
        "dismissed": row.dismissed,
        "createdAt": iso_at(row.created_at),
    }
