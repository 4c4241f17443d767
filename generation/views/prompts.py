"""Prompt pages: every version, and the editor (saving makes a new version once the placeholders pass)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.roles import ADMIN, role_required

from .. import selectors
from ..forms import PromptForm, error_messages
from ..models import PromptTemplate
from ..services import prompts as prompt_service


@role_required(ADMIN)
def prompt_list(request: HttpRequest) -> HttpResponse:
    # Reads only: the shipped prompts come with migration 0002 (and a launch makes any that are missing).
    return render(request, "generation/prompts.html", {"templates": selectors.prompt_versions()})


@role_required(ADMIN)
def prompt_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Edit a template: saving makes a new version (placeholders are checked first)."""
    base = get_object_or_404(PromptTemplate.objects.select_related("domain"), pk=pk) if pk else None
    initial = {}
    if base:
        initial = {
            "kind": base.kind,
            "domain": base.domain.slug if base.domain_id else None,
            "instruction_type": base.instruction_type,
            "language": base.language,
            "text": base.text,
        }
    form = PromptForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            template = prompt_service.save_template(
                kind=data["kind"],
                text=data["text"],
                by=request.user,
                domain=data["domain"],
                instruction_type=data["instruction_type"],
                note=data["note"],
                language=data["language"] or None,
            )
        except prompt_service.TemplateError as e:
            form.add_error(e.field if e.field in form.fields else None, str(e))
        else:
            messages.success(request, f"Saved {template}.")
            return redirect("generation:prompts")
    status = 200
    if form.errors:
        status = 400
        for line in error_messages(form):
            messages.error(request, f"Not saved. {line}")
    return render(request, "generation/prompt_edit.html", {"form": form, "base": base}, status=status)
