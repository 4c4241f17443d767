"""Who may do what with exports. Researchers (and admins, who hold every role) build and download;
annotators may see and download built exports only when EXPORTS_ANNOTATORS_MAY_DOWNLOAD is on (an
admin's setting); outsiders nothing. Read at request time so the setting can change without a code edit."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

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


def exports_page(*, build: bool = False) -> Callable:
    """Page decorator: anonymous → login, a role that may not read (or build) exports → 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            allowed = can_build(request.user) if build else can_read(request.user)
            if not allowed:
                raise PermissionDenied("Your role does not allow this.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
