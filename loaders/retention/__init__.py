"""Retention: delete old landing pages and ``request_log`` rows, within the rules that keep
every current raw row traceable and replayable (see ``landing`` and ``operational``)."""

from loaders.retention.landing import LandingPlan, apply_landing, plan_landing
from loaders.retention.operational import OperationalPlan, operational_retention
from loaders.retention.settings import RetentionSettings

__all__ = [
    "LandingPlan",
    "OperationalPlan",
    "RetentionSettings",
    "apply_landing",
    "operational_retention",
    "plan_landing",
]
