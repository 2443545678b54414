import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from spatiallab.jobs.models import Job

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if extracted:
            # get_or_create: transactional tests flush the groups that the data migration made.
            self.groups.add(Group.objects.get_or_create(name=extracted)[0])
            if extracted == "admin":
                self.is_staff = self.is_superuser = True
        self.save()


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    kind = "demo_primes"
    queue = "cpu"
    params = factory.LazyFunction(lambda: {"limit": 1000, "chunks": 10, "step_delay": 0.0})
    max_attempts = 3


def token_client(user):
    """A DRF test client that authenticates with the user's (new) API token, as a REST client would."""
    from rest_framework.test import APIClient

    from spatiallab.accounts.services import token_rotate

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_rotate(user=user).key}")
    return api


class GeneratorFactory(factory.django.DjangoModelFactory):
    """A scene-renderer generator (the CPU backend) with small images, so tests render fast."""

    class Meta:
        model = "generation.Generator"

    name = factory.Sequence(lambda n: f"renderer-{n}")
    backend = "scene-renderer"
    settings = factory.LazyFunction(lambda: {"width": 96, "height": 96, "break_fraction": 0.0, "labels": False,
                                             "batch_size": 8, "image_format": "png"})
