"""Who may do what with exports. Researchers (and admins, who hold every role) build and download;
annotators may see and download built exports only when EXPORTS_ANNOTATORS_MAY_DOWNLOAD is on (an
admin's setting); outsiders nothing. Read at request time so the setting can change without a code edit."""

from django.conf import settings

from accounts.roles import ANNOTATOR, RESEARCHER, has_role

BUILD_ROLES = (RESEARCHER,)


def read_roles() -> tuple[str, ...]:
    if settings.EXPORTS_ANNOTATORS_MAY_DOWNLOAD:
        return (RESEARCHER, ANNOTATOR)
    return (RESEARCHER,)


def can_build(user) -> bool:
    return has_role(user, *BUILD_ROLES)


def can_read(user) -> bool:
    return has_role(user, *read_roles())
