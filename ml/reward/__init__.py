"""SpatialScore, the spatial reward model: a Qwen2.5-VL (or Qwen2-VL) backbone with LoRA, a trained reward-token
embedding row and a small Gaussian head, trained on verified preference pairs (docs/reward.md).

`config` is pure Python (the web process may validate training settings with it); every other module needs torch:
`model` (SpatialScore), `losses`, `data` (Parquet pair exports), `train` (the loop and its CLI), `evaluate`
(pairwise accuracy as in the paper's Table 1) and `tiny` (random-weight backbones for tests and benchmarks)."""
