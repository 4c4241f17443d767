"""Pages of the corpus: home, domains (list, detail, admin edit), image browser and detail, upload, and
the stored images and thumbnails themselves (behind the role check)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFilesSent
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_safe
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.roles import ADMIN, ALL_ROLES, has_role, role_required

from .filters import ImageFilter
from .forms import DomainForm, ImportForm, SeedQuestionFormSet
from .import_batches import needs_background, stage_upload
from .imports import import_images, sources_from_uploads
from .media import media_response
from .models import Caption, Domain, Image, ImportBatch, Instruction, SeedQuestion
from .rules import InstructionType

IMAGES_PER_PAGE = 48


def home(request):
    """The landing page after login: what this user's role can do."""
    return render(request, "home.html")


@role_required(*ALL_ROLES)
def domain_list(request):
    domains = Domain.objects.with_counts()
    return render(request, "corpus/domain_list.html", {"domains": domains})


def _seed_questions_by_type(domain: Domain) -> list[tuple[str, list[SeedQuestion]]]:
    questions = list(domain.seed_questions.all())
    return [(t.label, [q for q in questions if q.type == t]) for t in InstructionType]


@role_required(*ALL_ROLES)
def domain_detail(request, slug: str):
    domain = get_object_or_404(Domain.objects.with_counts(), slug=slug)
    return render(
        request,
        "corpus/domain_detail.html",
        {"domain": domain, "seed_groups": _seed_questions_by_type(domain)},
    )


@role_required(ADMIN)
def domain_edit(request, slug: str):
    domain = get_object_or_404(Domain, slug=slug)
    form = DomainForm(request.POST or None, instance=domain)
    formset = SeedQuestionFormSet(request.POST or None, instance=domain, prefix="seeds")
    if request.method == "POST":
        if form.is_valid() and formset.is_valid():
            with transaction.atomic():
                form.save()
                formset.save()
            messages.success(request, f"Saved {domain.name}.")
            return redirect("domain-detail", slug=domain.slug)
        messages.error(request, "Nothing was saved: fix the fields marked below.")
    return render(request, "corpus/domain_edit.html", {"domain": domain, "form": form, "formset": formset})


@role_required(*ALL_ROLES)
def image_list(request):
    filterset = ImageFilter(request.GET or None, queryset=Image.objects.with_domain().order_by("-id"))
    paginator = Paginator(filterset.qs, IMAGES_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "query": query.urlencode()}
    template = "corpus/_image_grid.html" if request.headers.get("HX-Request") else "corpus/image_list.html"
    return render(request, template, context)


@role_required(*ALL_ROLES)
def image_detail(request, pk: int):
    image = get_object_or_404(
        Image.objects.select_related(
            "domain", "near_duplicate_of", "imported_by", "leased_by"
        ).prefetch_related(
            Prefetch("captions", queryset=Caption.objects.order_by("id")),
            Prefetch("instructions", queryset=Instruction.objects.order_by("type", "id")),
            Prefetch(
                "near_duplicates", queryset=Image.objects.only("id", "original_name", "near_duplicate_of")
            ),
        ),
        pk=pk,
    )
    return render(request, "corpus/image_detail.html", {"image": image})


def upload_limit_message(exc: Exception) -> str:
    """What to tell a person whose upload broke a request limit (too many files, too large)."""
    if isinstance(exc, TooManyFilesSent):
        return (
            f"This upload holds more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files "
            "(DATA_UPLOAD_MAX_NUMBER_FILES). Put the images in a .zip archive, or upload them in parts."
        )
    return (
        "The form fields of this upload are larger than the server accepts "
        f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes, DATA_UPLOAD_MAX_MEMORY_SIZE); the files themselves "
        "are not limited by it."
    )


# CSRF is checked inside (csrf_protect below), after the body is read: the middleware would read it first
# and turn an upload over DATA_UPLOAD_MAX_NUMBER_FILES into a bare "Bad Request" before this view could
# say what was wrong. The refusal itself changes nothing, so it needs no token.
@csrf_exempt
@role_required(ADMIN)
def image_import(request):
    """Small uploads are imported inside the request; large ones (or zips) are staged for a worker."""
    try:
        if request.method == "POST":
            request.FILES  # noqa: B018 - parses the body: the limits are checked here
    except (TooManyFilesSent, RequestDataTooBig) as exc:
        return _image_import_page(request, ImportForm(None), limit_error=exc)
    return _image_import(request)


@csrf_protect
def _image_import(request):
    summary = None
    data, files = (request.POST, request.FILES.getlist("files")) if request.method == "POST" else (None, [])
    form = ImportForm(data)
    if request.method == "POST":
        if not files:
            form.add_error(None, "Choose at least one image or .zip file.")
        if form.is_valid():
            fields = {
                "domain": form.cleaned_data["domain"],
                "by": request.user,
                "source": form.cleaned_data["source"],
                "license": form.cleaned_data["license"],
                "prior_knowledge": form.cleaned_data["prior_knowledge"],
            }
            if needs_background(files):
                batch = stage_upload(files, **fields)
                return redirect("image-import-batch", pk=batch.pk)
            summary = import_images(sources_from_uploads(files), **fields).as_dict()
    return _image_import_page(request, form, summary=summary)


def _image_import_page(request, form, *, summary=None, limit_error=None):
    if limit_error is not None:
        status = 413 if isinstance(limit_error, RequestDataTooBig) else 400
    else:
        status = 400 if form.errors else 200
    return render(
        request,
        "corpus/image_import.html",
        {
            "form": form,
            "summary": summary,
            "limit_error": upload_limit_message(limit_error) if limit_error is not None else "",
            "max_pixels": f"{settings.IMAGE_MAX_PIXELS:,}",
            "max_mb": settings.IMAGE_MAX_BYTES // (1024 * 1024),
            "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
            "recent_batches": ImportBatch.objects.select_related("domain").order_by("-id")[:5],
        },
        status=status,
    )


@role_required(ADMIN)
def import_batch_detail(request, pk: int):
    """A staged upload: its status while the worker imports it, then its summary. htmx polls it."""
    batch = get_object_or_404(ImportBatch.objects.select_related("domain", "created_by"), pk=pk)
    template = (
        "corpus/_import_batch.html" if request.headers.get("HX-Request") else "corpus/import_batch.html"
    )
    return render(
        request, template, {"batch": batch, "summary": batch.summary if batch.is_finished else None}
    )


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
