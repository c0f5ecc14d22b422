"""The ORM models, one module per part. Every row that users see belongs to an organization."""

from control_plane.domain.roles import Role
from control_plane.models.accounts import ApiKey, AuditEvent, BillingEvent, Membership, Organization, User
from control_plane.models.agents import Agent, AgentToken, AssignmentGrant
from control_plane.models.ai import AiDailyUsage, AiEvent, AiInsight, AiUsageRollup, CostAlert
from control_plane.models.alerts import AlertChannel, AlertDelivery, DeliveryAttempt
from control_plane.models.incidents import (
    HeartbeatState,
    Incident,
    IncidentBacklog,
    IncidentEvent,
    IncidentUpdate,
    MaintenanceWindow,
    MonitorState,
    RegionState,
)
from control_plane.models.monitoring import (
    CheckResult,
    CheckRollup,
    CheckScreenshot,
    Monitor,
    RollupBacklog,
)
from control_plane.models.status_pages import (
    PageIncident,
    PageIncidentUpdate,
    StatusPage,
    StatusPageComponent,
)

__all__ = [
    "Agent",
    "AgentToken",
    "AiDailyUsage",
    "AiEvent",
    "AiInsight",
    "AiUsageRollup",
    "AlertChannel",
    "AlertDelivery",
    "ApiKey",
    "AssignmentGrant",
    "AuditEvent",
    "BillingEvent",
    "CheckResult",
    "CheckRollup",
    "CheckScreenshot",
    "CostAlert",
    "DeliveryAttempt",
    "HeartbeatState",
    "Incident",
    "IncidentBacklog",
    "IncidentEvent",
    "IncidentUpdate",
    "MaintenanceWindow",
    "Membership",
    "Monitor",
    "MonitorState",
    "Organization",
    "PageIncident",
    "PageIncidentUpdate",
    "RegionState",
    "Role",
    "RollupBacklog",
    "StatusPage",
    "StatusPageComponent",
    "User",
]
