"""The Django admin as the admin role sees it: the `admin` group (not only staff superusers) may use it,
with every permission; other roles get 403 from the role middleware before reaching it."""

from django.contrib.admin import AdminSite
from django.contrib.auth.backends import ModelBackend

from .roles import ADMIN, has_role


class StudioAdminSite(AdminSite):
    site_header = "MMInstruct Studio administration"

    def has_permission(self, request) -> bool:
        return has_role(request.user, ADMIN)


class RoleBackend(ModelBackend):
    """Holders of the admin role have every model permission (admin ⊇ everything), like superusers."""

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return has_role(user_obj, ADMIN) or super().has_perm(user_obj, perm, obj)

    def has_module_perms(self, user_obj, app_label) -> bool:
        return has_role(user_obj, ADMIN) or super().has_module_perms(user_obj, app_label)
