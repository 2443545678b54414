from django.db.models import Count
from django.shortcuts import render

from spatiallab.accounts.roles import DASHBOARD_ROLES, role_required
from spatiallab.prompts.models import PromptSet


@role_required(*DASHBOARD_ROLES)
def prompt_set_list(request):
    sets = PromptSet.objects.select_related("created_by").annotate(prompt_count=Count("prompts"))
    return render(request, "prompts/prompt_set_list.html", {"prompt_sets": sets})
