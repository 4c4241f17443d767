"""The quality tests reuse the generation tests' fake model server, endpoints and eager Celery."""

from tests.generation.conftest import _model_key, _role_groups, eager, endpoints, fake  # noqa: F401
