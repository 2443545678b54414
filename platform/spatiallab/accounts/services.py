from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from spatiallab.accounts.roles import Role


@transaction.atomic
def user_create_with_role(*, username: str, password: str, role: Role, email: str = ""):
    """Creates or updates a user holding exactly `role`. Admins are staff and superusers (Django admin)."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.set_password(password)
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.save()
    user.groups.set([Group.objects.get_or_create(name=role.value)[0]])
    return user


@transaction.atomic
def token_rotate(*, user) -> Token:
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)
