"""Real Chromium: a researcher opens a finished GRPO run, sees its curves drawn (reward with its ± std band, KL,
clip fraction, NFEs) and the gallery of base vs latest samples for the same seeds, and registers a checkpoint
as a generator, which leads to the new generator's page."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from spatiallab.generation.models import Generator
from spatiallab.grpo.models import GrpoCheckpoint, GrpoMetric, GrpoRun, GrpoSample
from spatiallab.grpo.services import config_defaults
from spatiallab.jobs.models import JobStatus
from spatiallab.prompts.models import Prompt, PromptSet

CURVE_JS = """
(key) => {
  const canvas = document.querySelector(`canvas[data-curve="${key}"]`);
  const chart = canvas && window.Chart && window.Chart.getChart(canvas);
  if (!chart) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return {points: chart.data.datasets.map((d) => d.data.length), painted};
}
"""


def _png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_run_page_draws_curves_shows_the_gallery_and_registers_a_generator(page, live_server, demo_accounts,
                                                                            tmp_path):
    from spatiallab.accounts.roles import Role
    from tests.browser import log_in

    prompts = PromptSet.objects.create(name="browser-grpo")
    Prompt.objects.create(prompt_set=prompts, position=0, text="a bird left of a tree",
                          normalized_text="a bird left of a tree")
    base = Generator.objects.create(name="browser-flux", backend="diffusers",
                                    settings={"model": "/models/flux", "steps": 2, "width": 32, "height": 32})
    run = GrpoRun.objects.create(name="browser-grpo", generator=base, base_model="/models/flux",
                                 reward="brightness-left-right", train_prompt_set=prompts, eval_prompt_set=prompts,
                                 config=config_defaults(), status=JobStatus.SUCCEEDED,
                                 output_dir=str(tmp_path / "run"))
    for step in range(1, 6):
        GrpoMetric.objects.create(run=run, step=step, kind="train", values={
            "reward_mean": step / 100, "reward_std": 0.01, "kl": step * 1e-4, "clip_fraction": 0.1 * step,
            "nfe_sampling_per_prompt": 144, "nfe_train_per_prompt": 72, "nfe_reference_per_prompt": 72})
    for step in (0, 5):
        GrpoMetric.objects.create(run=run, step=step, kind="eval", values={"reward_mean": step / 50})
        for seed in (1_000_000, 1_000_001):
            name = default_storage.save(f"grpo-runs/{run.pk}/eval/step-{step:08d}/{seed}.png",
                                        ContentFile(_png("white" if step else "black")))
            GrpoSample.objects.create(run=run, step=step, prompt_index=0, prompt="a bird left of a tree", seed=seed,
                                      image=name, reward=step / 10)
    folder = tmp_path / "run" / "checkpoints" / "step-00000005"
    folder.mkdir(parents=True)
    (folder / "pytorch_lora_weights.safetensors").write_bytes(b"lora weights")
    GrpoCheckpoint.objects.create(run=run, step=5, path=str(folder))

    log_in(page, live_server, Role.RESEARCHER)
    page.goto(f"{live_server.url}/dashboard/grpo-runs/")
    page.click("text=browser-grpo")
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.querySelector('canvas[data-curve]'))")
    for key, points in (("reward", [5, 5, 5, 2]), ("kl", [5]), ("clip_fraction", [5]), ("nfe", [5, 5, 5])):
        drawn = page.evaluate(CURVE_JS, key)
        assert drawn["points"] == points and drawn["painted"] > 500, (key, drawn)

    rows = page.locator("#gallery-table tr.gallery-row")
    assert rows.count() == 2
    for image in page.locator("#gallery-table img").all():
        image.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#gallery-table img')]"
                           ".every((img) => img.complete && img.naturalWidth === 32)")
    assert page.locator("#gallery-table img[data-step='0']").count() == 2
    assert page.locator("#gallery-table img[data-step='5']").count() == 2

    with page.expect_navigation():
        page.click("button.register-generator")
    link = page.locator("a.registered-generator")
    assert link.inner_text() == "browser-grpo step 5"
    with page.expect_navigation():
        link.click()
    new = Generator.objects.get(name="browser-grpo step 5")
    assert page.url.endswith(f"/dashboard/generators/{new.pk}/")
    assert new.settings["lora"].startswith(str(tmp_path / "run" / "generators"))
    assert not page.errors, page.errors
