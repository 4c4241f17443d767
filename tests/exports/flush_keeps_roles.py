"""Transactional tests end with a flush of the test database, which also removes the role groups that
corpus's data migration made; `serialized_rollback` would bring them back, but it cannot inside a
Playwright test (the sync API runs an event loop, so Django's context-local connection there is not the
one that holds the serialized data). Flush sends post_migrate when nothing was serialized: recreate the
groups then. (Belongs in tests/conftest.py; kept here because that file is not this app's.)"""

from django.db.models.signals import post_migrate

from corpus.roles import ALL_ROLES


def _recreate_role_groups(sender, using="default", **kwargs):
    if getattr(sender, "label", None) != "corpus":
        return
    from django.contrib.auth.models import Group

    for name in ALL_ROLES:
        Group.objects.using(using).get_or_create(name=name)


post_migrate.connect(_recreate_role_groups, dispatch_uid="tests.exports.flush_keeps_roles")
