"""The generation app's services: its public face for other apps, which use only what is re-exported
here (reads are in generation.selectors). Inside the app, callers import the module that defines a
function (`from generation.services import units as unit_service`).

from generation import services
services.queue_regeneration(image, stage="instructions", by=user, instruction_type="judgement")
"""

from .endpoints import ensure_default_endpoints, resolve_endpoint
from .jobs import (
    LaunchError,
    NeedsConfirmation,
    RegenerationQuotaExceeded,
    cancel_job,
    launch_job,
    pause_job,
    queue_regeneration,
    resume_job,
)
from .prompts import TemplateError, ensure_default_prompts, save_template
from .recovery import sweep_jobs

__all__ = [
    "LaunchError",
    "NeedsConfirmation",
    "RegenerationQuotaExceeded",
    "TemplateError",
    "cancel_job",
    "ensure_default_endpoints",
    "ensure_default_prompts",
    "launch_job",
    "pause_job",
    "queue_regeneration",
    "resolve_endpoint",
    "resume_job",
    "save_template",
    "sweep_jobs",
]
