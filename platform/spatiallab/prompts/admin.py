from django.contrib import admin

from spatiallab.prompts.models import Prompt, PromptSet


class PromptInline(admin.TabularInline):
    model = Prompt
    extra = 0
    fields = ["position", "text", "word_count"]
    readonly_fields = ["word_count"]


@admin.register(PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at"]
    inlines = [PromptInline]
