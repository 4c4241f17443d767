from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CorpusConfig(AppConfig):
    name = "corpus"
    default = True  # this module also holds StudioAdminConfig
    verbose_name = "Corpus: domains, images, captions, instructions"


class StudioAdminConfig(admin_apps.AdminConfig):
    """The Django admin with a site that lets the admin role in (corpus/admin_site.py)."""

    default = False
    default_site = "corpus.admin_site.StudioAdminSite"
