"""/api/monitors/:id/cost-alert: the PUT body (validated at the edge), the response models the
OpenAPI document states, and the serializers that fill them."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, field_validator, model_validator, with_config
from typing_extensions import TypedDict

from control_plane.ai.budgets.cost_alerts import MAX_ALERT_EMAILS, Budgets, parse_alert_emails
from control_plane.api.responses import CLOSED, Data, Timestamp
from control_plane.api.schemas import RequestModel, examples
from control_plane.core.timefmt import iso
from control_plane.models import CostAlert

MAX_BUDGET_USD = 1_000_000_000.0

Budget = Annotated[
    float,
    Field(gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="USD; null: no budget for the period"),
]
AlertEmails = Annotated[
    str,
    StringConstraints(max_length=MAX_ALERT_EMAILS * 330),
    Field(
        description=f"Comma-separated email addresses to mail (1-{MAX_ALERT_EMAILS}; syntax checked, "
        'no DNS), e.g. "alice@example.com, bob@example.com"'
    ),
]


class CostAlertPut(RequestModel):
    """Creates the cost alert or replaces it: an omitted budget is no budget."""

    model_config = examples(
        {"dailyBudget": 10.0, "monthlyBudget": 200.0, "alertEmails": "alice@example.com"},
        {"dailyBudget": None, "monthlyBudget": 50, "alertEmails": "alice@example.com, bob@example.com"},
    )
    nullable: ClassVar[frozenset[str]] = frozenset({"dailyBudget", "monthlyBudget"})

    dailyBudget: Budget | None = None
    monthlyBudget: Budget | None = None
    alertEmails: AlertEmails

    @field_validator("alertEmails")
    @classmethod
    def _addresses(cls, value: str) -> str:
        return ", ".join(parse_alert_emails(value))

    @model_validator(mode="after")
    def _one_budget(self) -> CostAlertPut:
        if self.dailyBudget is None and self.monthlyBudget is None:
            raise ValueError("dailyBudget, monthlyBudget: at least one budget must be set (a number > 0)")
        return self

    def budgets(self) -> Budgets:
        return Budgets(
            daily_usd=self.dailyBudget,
            monthly_usd=self.monthlyBudget,
            alert_emails=self.alertEmails.split(", "),
        )


@with_config(CLOSED)
class CostAlertSavedOut(TypedDict):
    """What a PUT answers, as the reference: the alert without its marks."""

    id: str
    monitorId: str
    dailyBudgetUsd: float | None
    monthlyBudgetUsd: float | None
    alertEmails: str


@with_config(CLOSED)
class CostAlertOut(CostAlertSavedOut):
    lastDailyAlert: Annotated[
        Timestamp | None, Field(description="When the daily budget's last mail went; null: never")
    ]
    lastMonthlyAlert: Annotated[
        Timestamp | None, Field(description="When the monthly budget's last mail went; null: never")
    ]


@with_config(CLOSED)
class DeletedOut(TypedDict):
    deleted: bool


class CostAlertResponse(Data[CostAlertOut]):
    pass


class CostAlertSavedResponse(Data[CostAlertSavedOut]):
    pass


class CostAlertDeletedResponse(Data[DeletedOut]):
    pass


def saved_out(alert: CostAlert) -> CostAlertSavedOut:
    return {
        "id": alert.id,
        "monitorId": alert.monitor_id,
        "dailyBudgetUsd": alert.daily_budget_usd,
        "monthlyBudgetUsd": alert.monthly_budget_usd,
        "alertEmails": alert.alert_emails,
    }


def cost_alert_out(alert: CostAlert) -> CostAlertOut:
    return {
        **saved_out(alert),
        "lastDailyAlert": iso(alert.last_daily_alert),
        "lastMonthlyAlert": iso(alert.last_monthly_alert),
    }
