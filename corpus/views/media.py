"""The stored images and thumbnails themselves (`/media/…`), behind the role check."""

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.views.decorators.http import require_safe
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.roles import ALL_ROLES, has_role

from ..media import media_response


@require_safe
def media_file(request, path: str):
    """An uploaded image or its thumbnail (`/media/…`, the URL of `image.file` / `image.thumbnail`), for
    signed-in users with a role — by session, or by API token for scripts. Anonymous → login page, bad
    token → 401, no role → 403, anything that is not a stored image → 404. Behind nginx the bytes come
    from an `internal` location (MEDIA_ACCEL_REDIRECT); otherwise this view streams them."""
    user = request.user
    if not user.is_authenticated:
        try:
            found = TokenAuthentication().authenticate(request)
        except AuthenticationFailed as exc:
            response = HttpResponse(str(exc.detail), status=401, content_type="text/plain")
            response["WWW-Authenticate"] = "Token"
            return response
        if found is None:
            return redirect_to_login(request.get_full_path())
        user = found[0]
    if not has_role(user, *ALL_ROLES):
        raise PermissionDenied("Your role does not allow this file.")
    return media_response(request, path)
