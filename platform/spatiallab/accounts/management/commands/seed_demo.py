from django.core.management.base import BaseCommand
from django.db import transaction

from spatiallab.accounts.roles import Role
from spatiallab.accounts.services import user_create_with_role
from spatiallab.generation.services import generators_ensure_demo
from spatiallab.prompts.defaults import ensure_default_rules
from spatiallab.prompts.models import PerturbationRule
from spatiallab.prompts.services import prompt_set_ensure_demo

# For the embedded local default only; printed on purpose. Never run this command against production.
DEMO_ACCOUNTS = [
    ("annotator", "annotate-spatial-2026", Role.ANNOTATOR),
    ("researcher", "research-spatial-2026", Role.RESEARCHER),
    ("admin", "admin-spatial-2026", Role.ADMIN),
]


class Command(BaseCommand):
    help = ("Creates the demo accounts (one per role), the demo prompt set and the default perturbation rules, and "
            "prints the credentials.")

    @transaction.atomic
    def handle(self, *args, **options):
        users = {}
        for username, password, role in DEMO_ACCOUNTS:
            users[role] = user_create_with_role(username=username, password=password, role=role)
        prompt_set = prompt_set_ensure_demo(created_by=users[Role.RESEARCHER])
        ensure_default_rules(PerturbationRule)  # the migration made them; a flushed database lost them
        generators = generators_ensure_demo(created_by=users[Role.RESEARCHER])
        self.stdout.write(self.style.SUCCESS("Demo accounts (local use only):"))
        for username, password, role in DEMO_ACCOUNTS:
            self.stdout.write(f"  {role.value:<11} username: {username:<11} password: {password}")
        self.stdout.write(f"Demo prompt set: {prompt_set.name} ({prompt_set.prompts.count()} prompts)")
        self.stdout.write(f"Demo generators: {', '.join(g.name for g in generators)}")
