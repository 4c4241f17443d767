"""The three roles (admin, annotator, researcher) and the checks every page and endpoint uses.

admin ⊇ everything; a Django superuser counts as admin. Roles are Django groups made by migration.
"""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

ADMIN = "admin"
ANNOTATOR = "annotator"
RESEARCHER = "researcher"
ALL_ROLES = (ADMIN, ANNOTATOR, RESEARCHER)


def roles_of(user) -> frozenset[str]:
    """The user's roles, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_mmi_roles", None)
    if cached is None:
        names = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
        if user.is_superuser:
            names.add(ADMIN)
        cached = frozenset(names)
        user._mmi_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    """True if the user holds one of `roles`; admins hold every role."""
    held = roles_of(user)
    return ADMIN in held or any(role in held for role in roles)


def role_required(*roles: str) -> Callable:
    """View decorator: anonymous → login page, wrong role → 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied("Your role does not allow this page.")
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = roles
        return wrapped

    return decorator


class HasRole(BasePermission):
    """DRF permission: the view declares `allowed_roles` (and optionally `write_roles` for unsafe
    methods). A view that declares nothing is closed to everyone but admins."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            # DRF checks throttles only after permissions: without this, anonymous calls (answered 401)
            # would never count against the `anon` rate.
            view.check_throttles(request)
            return False
        roles = getattr(view, "allowed_roles", ())
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            roles = getattr(view, "write_roles", roles)
        action_roles = getattr(view, "action_roles", {}).get(getattr(view, "action", None))
        if action_roles is not None:
            roles = action_roles
        return has_role(user, *roles)


class LoginRequiredForPagesMiddleware:
    """Sends anonymous users to the login page for every page except login itself, static and media.
    The API is left to DRF, which answers 401/403 (token auth is resolved inside DRF)."""

    OPEN_PREFIXES = ("/api/", "/accounts/login/", "/static/", "/media/", "/favicon.ico")
    ADMIN_ONLY_PREFIXES = ("/django-admin/",)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(self.OPEN_PREFIXES):
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        # Django's admin would send a logged-in annotator to its own login form; a wrong role gets 403.
        if request.path.startswith(self.ADMIN_ONLY_PREFIXES) and not has_role(request.user, ADMIN):
            raise PermissionDenied("Only admins may use the Django admin.")
        return self.get_response(request)


def roles_context(request) -> dict:
    """Template context: which parts of the navigation to show."""
    user = getattr(request, "user", None)
    held = roles_of(user) if user is not None else frozenset()
    is_admin = ADMIN in held
    return {
        "is_admin": is_admin,
        "is_annotator": is_admin or ANNOTATOR in held,
        "is_researcher": is_admin or RESEARCHER in held,
    }
