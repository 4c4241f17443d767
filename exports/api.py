"""REST endpoints of the exports app, mounted under /api/v1/."""


def register(router) -> None:
    """Add this app's viewsets to the one /api/v1/ router."""


urlpatterns: list = []
