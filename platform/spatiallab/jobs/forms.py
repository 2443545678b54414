from django import forms


class DemoPrimesForm(forms.Form):
    """The dashboard's launch form for the demo job; its values are checked again by the kind's serializer."""

    limit = forms.IntegerField(min_value=10, max_value=200_000_000, initial=2_000_000)
    chunks = forms.IntegerField(min_value=1, max_value=10_000, initial=20)
    step_delay = forms.FloatField(min_value=0.0, max_value=10.0, initial=0.2, label="Delay per step (s)")
