"""Pages of the corpus: domains (list, detail, admin edit), the image browser and an image's
detail."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render

from accounts.roles import ADMIN, ALL_ROLES, role_required

from ..filters import ImageFilter
from ..forms import DomainForm, SeedQuestionFormSet
from ..models import Caption, Domain, Image, Instruction, SeedQuestion
from ..rules import InstructionType

IMAGES_PER_PAGE = 48


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
    context = {
        "filter": filterset,
        "page": page,
        "query": query.urlencode(),
        "domains": Domain.objects.filter(is_active=True).order_by("name"),
    }
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
