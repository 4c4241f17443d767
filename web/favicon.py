"""/favicon.ico: browsers ask for it on every page that does not name an icon (the Django admin, the
API's JSON and documentation pages); the site's own pages name static/favicon.svg in base.html."""

from django.conf import settings
from django.http import FileResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

ICON = settings.BASE_DIR / "static" / "favicon.ico"


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    return FileResponse(ICON.open("rb"), content_type="image/x-icon")
