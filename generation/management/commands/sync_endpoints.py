"""python manage.py sync_endpoints — bring the two default endpoints in line with the OPENAI_* variables.

Run at every start (`make run`, docker-compose's web command; workers do the same on `worker_ready`), so a
changed OPENAI_BASE_URL, model or limit takes effect on restart. Idempotent."""

from django.core.management.base import BaseCommand, CommandError

from generation.services import endpoints as endpoint_service


class Command(BaseCommand):
    help = "Create or update the default endpoints from the OPENAI_* environment variables."

    def handle(self, *args, **opts):
        try:
            endpoints = endpoint_service.ensure_default_endpoints()
        except endpoint_service.EndpointMisconfigured as e:
            raise CommandError(str(e)) from e
        for endpoint in endpoints.values():
            key = "set" if endpoint_service.key_is_set(endpoint) else "NOT SET"
            self.stdout.write(
                f"{endpoint.name}: {endpoint.base_url} model {endpoint.model} "
                f"(key variable {endpoint.api_key_env}: {key})"
            )
