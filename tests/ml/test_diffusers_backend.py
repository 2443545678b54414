"""The diffusers backend on tiny random-weight pipelines (Flux and SD3) built from configs, saved and loaded back
through from_pretrained: determinism, per-image seeds, scheduler swap, LoRA, the backend cache, errors.

One pipeline per family per module: importing torch and diffusers and building the pipelines is the slow part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from safetensors.torch import load_file  # noqa: E402

from ml.generation.base import BackendCache, GenerationRequest, load_backend  # noqa: E402
from ml.generation.tiny import build_tiny_flux, build_tiny_flux_lora, build_tiny_sd3  # noqa: E402

PERFECT = "a red cube to the left of a blue ball"
PERTURBED = "a red cube to the right of a blue ball"


@pytest.fixture(scope="module")
def flux(tmp_path_factory) -> Path:
    return build_tiny_flux(tmp_path_factory.mktemp("flux"))


@pytest.fixture(scope="module")
def flux_lora(flux, tmp_path_factory) -> Path:
    # alpha != rank: the LoRA's own scale (alpha / rank = 2) must survive saving and loading.
    return build_tiny_flux_lora(flux, tmp_path_factory.mktemp("flux-lora"), rank=4, alpha=8)


@pytest.fixture(scope="module")
def sd3(tmp_path_factory) -> Path:
    return build_tiny_sd3(tmp_path_factory.mktemp("sd3"))


def settings_for(model: Path, **overrides) -> dict:
    return {"model": str(model), "device": "cpu", "dtype": "float32", "steps": 2, "width": 32, "height": 32,
            "batch_size": 4, "max_sequence_length": 64, **overrides}


@pytest.fixture(scope="module")
def backend(flux):
    backend = load_backend("diffusers", settings_for(flux))
    yield backend
    backend.close()


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def one(backend, prompt: str, seed: int) -> np.ndarray:
    return pixels(backend.generate([GenerationRequest(prompt, seed)])[0].image)


def test_same_prompt_and_seed_give_the_same_image(backend):
    first, second = backend.generate([GenerationRequest(PERFECT, 7)]), backend.generate([GenerationRequest(PERFECT, 7)])
    assert first[0].image.size == (32, 32)
    assert first[0].image.tobytes() == second[0].image.tobytes()


def test_seed_and_prompt_change_the_image_and_a_pair_shares_its_noise(backend):
    base, other_seed, perturbed = one(backend, PERFECT, 1), one(backend, PERFECT, 2), one(backend, PERTURBED, 1)
    seed_change = np.abs(base - other_seed).mean()
    prompt_change = np.abs(base - perturbed).mean()
    assert seed_change > 0 and prompt_change > 0
    # Same seed, same initial noise: the pair differs only by what the prompt changes, far less than a new seed
    # (measured on the tiny Flux: about 40 grey levels for a new seed, under 3 for the prompt).
    assert prompt_change < seed_change / 4


def test_an_image_does_not_depend_on_its_batch_mates(backend):
    requests = [GenerationRequest(f"{PERFECT} number {i}", seed=100 + i) for i in range(6)]  # batches of 4 and 2
    batched = backend.generate(requests)
    assert len(batched) == 6
    for request, image in zip(requests, batched, strict=True):
        alone = one(backend, request.prompt, request.seed)
        # Not bit-exact on CPU: a batch of 4 runs other matmul kernels than a batch of 1, and the float noise
        # can flip a pixel's rounding by one grey level. The noise itself is drawn per image, so nothing more.
        assert np.abs(pixels(image.image) - alone).max() <= 2


def test_meta_describes_the_image(backend, flux):
    meta = backend.generate([GenerationRequest(PERFECT, 0), GenerationRequest(PERTURBED, 0)])[0].meta
    assert meta["steps"] == 2 and meta["width"] == 32 and meta["height"] == 32 and meta["guidance"] == 3.5
    assert meta["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert (meta["dtype"], meta["device"], meta["lora"]) == ("float32", "cpu", "")
    assert 0 < meta["seconds"] < 5


def test_half_precision_on_cpu_computes_in_float32(flux):
    backend = load_backend("diffusers", settings_for(flux, dtype="bfloat16", device="auto"))
    if backend.device.type != "cpu":
        pytest.skip("checks the CPU fallback; this machine has CUDA")
    assert backend.pipe.transformer.dtype == torch.float32
    assert backend.generate([GenerationRequest(PERFECT, 0)])[0].meta["dtype"] == "float32"


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside diffusers' DPMSolver
def test_scheduler_swap_passes_its_options(flux, backend):
    swapped = load_backend("diffusers", settings_for(flux, scheduler="DPMSolverMultistepScheduler", steps=3,
                                                     scheduler_options={"use_flow_sigmas": True,
                                                                        "prediction_type": "flow_prediction"}))
    assert type(swapped.pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert swapped.pipe.scheduler.config.use_flow_sigmas is True
    image = swapped.generate([GenerationRequest(PERFECT, 3)])[0]
    assert image.meta["scheduler"] == "DPMSolverMultistepScheduler"
    assert image.image.size == (32, 32)


def test_unknown_scheduler_is_a_clear_error(flux):
    with pytest.raises(ValueError, match=r"^scheduler: 'NoSuchScheduler' is not a scheduler class"):
        load_backend("diffusers", settings_for(flux, scheduler="NoSuchScheduler"))
    with pytest.raises(ValueError, match="^scheduler: 'FluxPipeline'"):  # a diffusers class, but no scheduler
        load_backend("diffusers", settings_for(flux, scheduler="FluxPipeline"))
    with pytest.raises(ValueError, match="^scheduler_options: FlowMatchEulerDiscreteScheduler has no option 'shfit'"):
        load_backend("diffusers", settings_for(flux, scheduler="FlowMatchEulerDiscreteScheduler",
                                               scheduler_options={"shfit": 3.0}))


def test_lora_changes_the_image_and_scale_zero_keeps_the_base(backend, flux, flux_lora):
    base = one(backend, PERFECT, 5)
    with_lora = load_backend("diffusers", settings_for(flux, lora=str(flux_lora)))
    assert with_lora.generate([GenerationRequest(PERFECT, 5)])[0].meta["lora"] == str(flux_lora)
    assert np.abs(one(with_lora, PERFECT, 5) - base).mean() > 0.2

    # The .safetensors file itself loads too, and a zero scale fuses nothing in.
    weights = flux_lora / "pytorch_lora_weights.safetensors"
    zero = load_backend("diffusers", settings_for(flux, lora=str(weights), lora_scale=0.0))
    assert np.abs(one(zero, PERFECT, 5) - base).max() <= 1


def test_lora_is_fused_with_its_alpha_and_the_scale(flux, flux_lora):
    # What the training side relies on: weight += lora_scale * alpha / rank * B @ A, layer by layer.
    state = load_file(flux_lora / "pytorch_lora_weights.safetensors")
    prefix = "transformer.transformer_blocks.0.attn.to_q"
    lora_a, lora_b = state[f"{prefix}.lora_A.weight"], state[f"{prefix}.lora_B.weight"]
    base = load_backend("diffusers", settings_for(flux)).pipe.transformer.transformer_blocks[0].attn.to_q.weight
    fused = load_backend("diffusers", settings_for(flux, lora=str(flux_lora), lora_scale=0.5))
    delta = fused.pipe.transformer.transformer_blocks[0].attn.to_q.weight - base
    torch.testing.assert_close(delta, 0.5 * (8 / 4) * lora_b @ lora_a, atol=1e-5, rtol=1e-4)


def test_missing_lora_is_a_clear_error(flux, tmp_path):
    with pytest.raises(FileNotFoundError, match="^lora: "):
        load_backend("diffusers", settings_for(flux, lora=str(tmp_path / "nothing.safetensors")))


def test_sd3_loads_and_generates_through_the_same_backend(sd3):
    backend = load_backend("diffusers", settings_for(sd3, width=64, height=64))
    assert type(backend.pipe).__name__ == "StableDiffusion3Pipeline"
    requests = [GenerationRequest(PERFECT, 0), GenerationRequest(PERFECT, 0), GenerationRequest(PERFECT, 1)]
    images, again = backend.generate(requests), backend.generate(requests)
    assert [image.image.size for image in images] == [(64, 64)] * 3
    assert [i.image.tobytes() for i in images] == [i.image.tobytes() for i in again]
    # The same request at another place in the batch: equal up to a grey level of float rounding on CPU.
    assert np.abs(pixels(images[0].image) - pixels(images[1].image)).max() <= 2
    assert np.abs(pixels(images[0].image) - pixels(images[2].image)).mean() > 5
    backend.close()


def test_backend_cache_reuses_and_replaces(flux, sd3):
    cache = BackendCache()
    first = cache.get("flux", "diffusers", settings_for(flux))
    assert cache.get("flux", "diffusers", settings_for(flux)) is first
    assert cache.loads == 1

    second = cache.get("sd3", "diffusers", settings_for(sd3))
    assert second is not first and cache.loads == 2
    assert first.pipe is None  # closed before the next one loaded
    with pytest.raises(RuntimeError, match="closed"):
        first.generate([GenerationRequest(PERFECT, 0)])
    assert len(second.generate([GenerationRequest(PERFECT, 0)])) == 1
    cache.release()
    assert second.pipe is None


def test_missing_or_wrong_model_folder_is_a_clear_error(tmp_path, flux):
    with pytest.raises(FileNotFoundError, match="^model: no pipeline folder at"):
        load_backend("diffusers", settings_for(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="holds no model_index.json"):
        load_backend("diffusers", settings_for(flux / "vae"))
