"""The generation app's services. Other apps use only what is re-exported here.

from generation import services
services.queue_regeneration(image, stage="instructions", by=user, instruction_type="judgement")
"""

from .endpoints import ensure_default_endpoints, resolve_endpoint
from .jobs import (
    InvalidTransition,
    LaunchError,
    NeedsConfirmation,
    RegenerationQuotaExceeded,
    cancel_job,
    launch_job,
    pause_job,
    progress,
    queue_regeneration,
    resume_job,
    transition,
)
from .prompts import TemplateError, ensure_default_prompts, save_template
from .recovery import sweep_jobs

__all__ = [
    "InvalidTransition",
    "LaunchError",
    "NeedsConfirmation",
    "RegenerationQuotaExceeded",
    "TemplateError",
    "cancel_job",
    "ensure_default_endpoints",
    "ensure_default_prompts",
    "launch_job",
    "pause_job",
    "progress",
    "queue_regeneration",
    "resolve_endpoint",
    "resume_job",
    "save_template",
    "sweep_jobs",
    "transition",
]
