from django.contrib import admin

from spatiallab.generation.models import GenerationFailure, Generator, Pair


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "enabled", "created_at"]
    list_filter = ["backend", "enabled"]

    def get_readonly_fields(self, request, obj=None):
        # Settings are frozen once pairs exist (services.generator_update); the admin never edits them.
        return ["settings", "backend"] if obj else []


@admin.register(Pair)
class PairAdmin(admin.ModelAdmin):
    list_display = ["id", "generator", "perturbed", "seed", "n_edits", "ground_truth_ok", "job", "created_at"]
    list_filter = ["generator", "n_edits", "ground_truth_ok"]
    raw_id_fields = ["prompt", "perturbed", "job"]
    list_select_related = ["generator"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a pair's files and metadata are what the job made; nothing edits them


@admin.register(GenerationFailure)
class GenerationFailureAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "generator", "perturbed", "seed", "created_at"]
    raw_id_fields = ["job", "perturbed"]
