from django.db import migrations


def parse_existing(apps, schema_editor):
    """Prompts stored before prompts carried their scene graph get it now (the parser is pure Python)."""
    from ml.spatial.parser import parse

    Prompt = apps.get_model("prompts", "Prompt")
    batch = []
    for prompt in Prompt.objects.filter(graph={}).only("pk", "text").iterator(chunk_size=2000):
        graph = parse(prompt.text)
        stats = graph.stats()
        prompt.graph = graph.to_dict()
        prompt.object_count, prompt.relation_count = stats["objects"], stats["relations"]
        prompt.unparsed_count, prompt.relation_kinds = stats["unparsed"], stats["relation_kinds"]
        batch.append(prompt)
        if len(batch) >= 2000:
            Prompt.objects.bulk_update(batch, ["graph", "object_count", "relation_count", "unparsed_count",
                                               "relation_kinds"])
            batch = []
    Prompt.objects.bulk_update(batch, ["graph", "object_count", "relation_count", "unparsed_count", "relation_kinds"])


class Migration(migrations.Migration):
    dependencies = [("prompts", "0003_default_rules")]
    operations = [migrations.RunPython(parse_existing, migrations.RunPython.noop)]
